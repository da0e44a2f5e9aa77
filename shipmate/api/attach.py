"""The interactive one-off: a WebSocket at /apps/{app}/run.

`POST /apps/{app}/run` streams a one-off's output and nothing goes in; this WebSocket also
carries its input, and a pseudo-terminal when the client has one (`shipmate run` from a
terminal), as `convox run` and `kubectl exec -it` do.

The query says what to run: `service`, `command`, `release` (default: the active one), and
`tty=1&rows=R&cols=C` for a terminal of that size. Then, client to rack: binary messages are
input; text messages are JSON controls: {"eof": true} (end of input; on a terminal, Ctrl-D
is input like any key), {"resize": [rows, cols]}, {"signal": "INT"} (also TERM, HUP, QUIT).
Rack to client: binary messages are output (error included), then one text message
{"exit": CODE} before the rack closes. A refused run is the API's usual JSON error answer
to the handshake (401, 403, 404, 409...); a client gone stops the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from shipmate.api.auth import authorize
from shipmate.api.errors import ApiError, response_of
from shipmate.domain.errors import InvalidInput, ShipmateError
from shipmate.runtimes.base import Attached, Terminal
from shipmate.services import processes
from shipmate.services.context import Context

log = logging.getLogger("shipmate.api.attach")

router = APIRouter()

SIGNALS = {s.name[3:]: s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)}
MAX_SIZE = 10_000  # rows or columns: past this it is not a window


@router.websocket("/apps/{app}/run")
async def run_attached(websocket: WebSocket, app: str) -> None:
    ctx: Context = websocket.app.state.ctx
    try:
        await authorize(websocket, "POST", "/apps/{app}/run")
        query = websocket.query_params
        terminal = _terminal(query.get("tty"), query.get("rows"), query.get("cols"))
        plan = processes.plan_run(
            ctx, app, query.get("service", ""), query.get("command", ""), query.get("release")
        )
        attached = await processes.attach(ctx, plan, terminal)
    except (ApiError, ShipmateError) as exc:
        await websocket.send_denial_response(response_of(exc))
        return
    try:
        await websocket.accept()
        await _relay(websocket, attached)
    finally:
        await attached.close()


async def _relay(websocket: WebSocket, attached: Attached) -> None:
    output = asyncio.create_task(_send_output(websocket, attached))
    commands = asyncio.create_task(_take_input(websocket, attached))
    try:
        done, _ = await asyncio.wait({output, commands}, return_when=asyncio.FIRST_COMPLETED)
        if output not in done:
            return  # the client left: closing the session stops the process
        output.result()
        code = await attached.wait()
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await websocket.send_text(json.dumps({"exit": code}))
            await websocket.close()
    finally:
        for task in (output, commands):
            task.cancel()
        await asyncio.gather(output, commands, return_exceptions=True)


async def _send_output(websocket: WebSocket, attached: Attached) -> None:
    while chunk := await attached.read():
        await websocket.send_bytes(chunk)


async def _take_input(websocket: WebSocket, attached: Attached) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await attached.write(message["bytes"])
        elif message.get("text") is not None:
            _control(attached, message["text"])


def _control(attached: Attached, text: str) -> None:
    try:
        control: Any = json.loads(text)
    except ValueError:
        log.warning("ignored a control that is not JSON: %.80s", text)
        return
    if not isinstance(control, dict):
        return
    if control.get("eof"):
        attached.close_stdin()
    if "resize" in control:
        with contextlib.suppress(InvalidInput, TypeError, ValueError):
            rows, cols = control["resize"]
            attached.resize(_size(rows, cols))
    if control.get("signal") in SIGNALS:
        attached.signal(SIGNALS[control["signal"]])


def _terminal(tty: str | None, rows: str | None, cols: str | None) -> Terminal | None:
    if tty not in ("1", "true"):
        return None
    try:
        return _size(int(rows or 24), int(cols or 80))
    except ValueError:
        raise InvalidInput("rows and cols are the terminal's size: whole numbers") from None


def _size(rows: Any, cols: Any) -> Terminal:
    if not all(isinstance(n, int) and 0 < n <= MAX_SIZE for n in (rows, cols)):
        raise InvalidInput(f"a terminal is 1 to {MAX_SIZE} rows and columns")
    return Terminal(rows, cols)
