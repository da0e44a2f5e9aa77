"""Server-Sent Events responses whose client may go away at any moment.

FastAPI's own generator streams (`response_class=EventSourceResponse`) forward items to the
response through a keep-alive task that is not told when the response ends: a client gone
while that task waits to hand an item over raises `anyio.BrokenResourceError` in it, and the
rack log gets an `Exception in ASGI application` traceback for every `logs` a user stops
while output flows. Here the keep-alive is a timeout on a queue read by the response
itself, and the task filling the queue is cancelled (and the stream's generator closed)
in the response's own `finally`, so a departed client ends the stream quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.sse import KEEPALIVE_COMMENT, ServerSentEvent, format_sse_event
from starlette.responses import StreamingResponse

# Seconds of silence after which a comment is sent, so proxies keep the connection open.
PING_INTERVAL = 15.0
_END = object()

# How the stream routes are documented: the item schema FastAPI gives its own SSE routes.
SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Successful Response",
        "content": {
            "text/event-stream": {
                "itemSchema": {
                    "type": "object",
                    "properties": {
                        "data": {"type": "string"},
                        "event": {"type": "string"},
                        "id": {"type": "string"},
                        "retry": {"type": "integer", "minimum": 0},
                    },
                }
            }
        },
    }
}


class EventStream(StreamingResponse):
    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[ServerSentEvent], status_code: int = 200) -> None:
        super().__init__(
            _wire(events),
            status_code=status_code,
            # No caching, and no buffering by an nginx in front: events are for now.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def encode(event: ServerSentEvent) -> bytes:
    data = None if event.data is None else json.dumps(jsonable_encoder(event.data))
    return format_sse_event(
        data_str=event.raw_data if event.raw_data is not None else data,
        event=event.event,
        id=event.id,
        retry=event.retry,
        comment=event.comment,
    )


async def _wire(events: AsyncIterator[ServerSentEvent]) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1)

    async def produce() -> None:
        try:
            async for event in events:
                await queue.put(encode(event))
        except Exception as exc:  # handed to the response, which raises it
            await queue.put(exc)
            return
        await queue.put(_END)

    producer = asyncio.ensure_future(produce())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), PING_INTERVAL)
            except TimeoutError:
                yield KEEPALIVE_COMMENT
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
