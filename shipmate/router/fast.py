"""The router's fast path: asyncio Protocols for the exchanges that make up nearly all traffic.

A request on a kept-alive HTTP/1.1 connection, with no body or a small one, whose answer is
delimited by Content-Length (or has no body), is relayed from callbacks: no task, no future,
no timer per request. That is where the router spends its time under load, and streams cost
about twice the CPU per request (see docs/BENCHMARKS.md).

Everything else goes to the stream-based path in proxy.py, which implements the whole of the
protocol (error pages, chunked and streamed bodies, Expect, upgrades, HTTP/1.0, retries on
other processes) and is tested on its own:

- a request the fast path does not take is handed over with its connection before anything
  was sent anywhere (`_handoff`): the stream path reads it again from the bytes buffered here;
- a response the fast path does not take (chunked, close-delimited, 101) is handed over with
  both connections after its head was read (`_convert`); the stream path relays it and goes on
  serving the client connection.

In-flight accounting is the same on both paths: a request is counted on its process from the
moment it is routed until the whole response is written, so the runtime's wait_drained holds.
Deadlines are checked by the router's once-a-second sweep rather than with a timer each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from shipmate.router.http1 import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    CRLF,
    HEAD_END,
    IDEMPOTENT,
    MAX_HEAD,
    ProtocolError,
    Request,
    Response,
    parse_request,
    parse_response,
    response_body,
)
from shipmate.router.upstream import Connection

if TYPE_CHECKING:
    from shipmate.router.proxy import Router

log = logging.getLogger("shipmate.router.proxy")

# Small request bodies are taken by the fast path (the same bound the stream path buffers).
FAST_BODY = 64 * 1024
# Bytes a client may send ahead (pipelining) while its previous request is being answered.
MAX_AHEAD = MAX_HEAD + FAST_BODY


def to_streams(
    transport: asyncio.Transport, buffered: bytes, eof: bool, write_paused: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Move a connection from a fast-path protocol to a StreamReader/StreamWriter pair, with
    the bytes already received but not yet used put back in front."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_HEAD, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if write_paused:
        # The transport told the old protocol to stop writing and will say when to resume;
        # the new one has to know, or drain() would not wait.
        protocol.pause_writing()
    if buffered:
        reader.feed_data(buffered)
    if eof:
        reader.feed_eof()
    transport.resume_reading()
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


class ClientConnection(asyncio.Protocol):
    """One client connection while it is on the fast path."""

    __slots__ = (
        "buf",
        "client_ip",
        "deadline",
        "eof",
        "exchange",
        "gone",
        "read_paused",
        "router",
        "transport",
        "write_paused",
    )

    def __init__(self, router: Router) -> None:
        self.router = router
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.buf = b""
        self.exchange: Exchange | None = None
        self.client_ip = b"unknown"
        self.deadline = 0.0
        self.eof = False
        self.gone = False
        self.read_paused = False
        self.write_paused = False

    # --- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client_ip = str(peer[0]).encode()
        self.router._clients.add(self)
        self.deadline = time.monotonic() + self.router.keepalive_timeout
        if self.router._stopping:
            transport.close()

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        if self.exchange is None:
            self.deadline = time.monotonic() + self.router.keepalive_timeout
            self._next()
        elif len(self.buf) > MAX_AHEAD and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        if self.exchange is None:
            self._next()
        return True  # keep the write side open for a response in progress

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        self.router._clients.discard(self)
        if self.exchange is not None:
            self.exchange.abort()

    def pause_writing(self) -> None:
        self.write_paused = True
        exchange = self.exchange
        if exchange is not None and exchange.upstream is not None:
            exchange.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        exchange = self.exchange
        if exchange is not None and exchange.upstream is not None:
            exchange.upstream.transport.resume_reading()

    # --- requests -----------------------------------------------------------------------------

    def _next(self) -> None:
        """Start the next request in the buffer once it is complete."""
        if self.gone:
            return
        router = self.router
        buf = self.buf
        end = buf.find(HEAD_END)
        if end < 0 or buf[:2] == CRLF:
            if len(buf) > MAX_HEAD or buf[:2] == CRLF:
                self._handoff()
            elif self.eof or router._stopping:
                self.transport.close()
            return
        try:
            req = parse_request(buf[: end + 4])
        except ProtocolError:
            self._handoff()  # the stream path answers 400 with the reason
            return
        if (
            req.version != b"HTTP/1.1"
            or req.upgrade is not None
            or req.expect_continue
            or req.body == BODY_CHUNKED
            or (req.body == BODY_LENGTH and req.length > FAST_BODY)
            or router._stopping
        ):
            self._handoff()
            return
        total = end + 4 + (req.length if req.body == BODY_LENGTH else 0)
        if len(buf) < total:
            if self.eof:
                self.transport.close()
            return  # the rest of the body is on its way
        route = router._route(req.host)
        candidates = None if route is None else router.table.candidates(route[1], route[0])
        if not candidates:
            self._handoff()  # 404 and 503 pages come from the stream path
            return
        raw = buf[:total]
        self.buf = buf[total:]
        # No await since the candidates were read, so the first one is still routed: counted
        # in flight from here, it is one the runtime waits for before stopping its process.
        exchange = Exchange(self, req, raw, candidates[0])
        self.exchange = exchange
        router.table.begin(exchange.backend)
        body = raw[end + 4 :]
        exchange.payload = router._upstream_head(req, self.client_ip) + body
        exchange.deadline = time.monotonic() + router.read_timeout
        upstream = router._fast_pool.acquire(exchange.backend)
        if upstream is not None:
            upstream.send(exchange)
        else:
            exchange.connecting = asyncio.ensure_future(router._fast_connect(exchange))

    def _handoff(self, replay: bytes = b"") -> None:
        """Leave this connection to the stream path, from `replay` + what is buffered."""
        self.router._clients.discard(self)
        data, self.buf = replay + self.buf, b""
        if self.gone:
            return
        reader, writer = to_streams(self.transport, data, self.eof, self.write_paused)
        self.gone = True  # no callback reaches this object any more
        self.router._spawn_stream(self.router._serve(reader, writer))

    def finished(self, keep: bool) -> None:
        """The exchange in progress is over; go on with the next request, if any."""
        self.exchange = None
        if not keep or self.router._stopping or self.gone:
            self.transport.close()
            return
        self.deadline = time.monotonic() + self.router.keepalive_timeout
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        if self.buf or self.eof:
            self._next()

    def check(self, now: float) -> None:
        """Called by the router's sweep: enforce the deadlines."""
        exchange = self.exchange
        if exchange is not None:
            if now > exchange.deadline:
                exchange.timed_out()
        elif now > self.deadline:
            self.transport.close()


class Exchange:
    """One request on the fast path, from routing to the end of its response."""

    __slots__ = (
        "backend",
        "client",
        "connecting",
        "deadline",
        "keep",
        "payload",
        "raw",
        "req",
        "responded",
        "tracked",
        "upstream",
    )

    def __init__(self, client: ClientConnection, req: Request, raw: bytes, backend: str) -> None:
        self.client = client
        self.req = req
        self.raw = raw
        self.backend = backend
        self.payload = b""
        self.upstream: UpstreamConnection | None = None
        self.connecting: asyncio.Future[None] | None = None
        self.deadline = 0.0
        self.keep = False
        self.responded = False
        self.tracked = True

    def _untrack(self) -> None:
        if self.tracked:
            self.tracked = False
            self.client.router.table.end(self.backend)

    def finish(self, reusable: bool) -> None:
        """The whole response is written to the client."""
        self._untrack()
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        upstream = self.upstream
        if upstream is not None:
            upstream.exchange = None
            self.upstream = None
            if reusable:
                # Reading may be paused for a slow client; the next exchange needs it on.
                upstream.transport.resume_reading()
                self.client.router._fast_pool.release(upstream)
            else:
                upstream.transport.close()
        self.client.finished(self.keep)

    def abort(self) -> None:
        """The client went away: nothing left to answer."""
        self._untrack()
        if self.connecting is not None:
            self.connecting.cancel()
        upstream = self.upstream
        if upstream is not None:
            upstream.exchange = None
            self.upstream = None
            upstream.transport.close()
        self.client.exchange = None

    def retry_elsewhere(self) -> None:
        """Nothing reached the client: the stream path routes the request again from scratch
        (another process, a fresh connection) and writes the error page if all fail."""
        self._untrack()
        upstream = self.upstream
        if upstream is not None:
            upstream.exchange = None
            self.upstream = None
            upstream.transport.close()
        client = self.client
        client.exchange = None
        client._handoff(replay=self.raw)

    def bad_gateway(self, reason: str, *, keep: bool = True) -> None:
        router = self.client.router
        log.warning("router: process %s failed: %s", self.backend, reason)
        page, keep = router._page(
            502, f"process {self.backend} failed: {reason}", keep=keep and self.req.keep_alive
        )
        if not self.client.gone:
            self.client.transport.write(page)
        self.keep = keep
        self.finish(reusable=False)

    def upstream_lost(self, exc: Exception | None, partial: bool) -> None:
        if self.responded:
            # The head is out; closing is the only way left to say the body is incomplete.
            log.warning("router: process %s failed mid-response: connection closed", self.backend)
            self.keep = False
            self.finish(reusable=False)
            return
        reason = "connection reset" if isinstance(exc, ConnectionResetError) else None
        reason = reason or ("connection closed" if exc is None else str(exc) or "connection lost")
        if not partial and self.req.method in IDEMPOTENT:
            self.retry_elsewhere()
        else:
            self.bad_gateway(f"{reason} before a complete response")

    def timed_out(self) -> None:
        if self.responded:
            log.warning("router: process %s stalled mid-response", self.backend)
            self.keep = False
            self.finish(reusable=False)
        else:
            reason = f"no response within {self.client.router.read_timeout:g}s"
            self.bad_gateway(reason, keep=False)

    def convert(self, upstream: UpstreamConnection, resp: Response, rest: bytes) -> None:
        """Hand the response (and then the client connection) to the stream path."""
        client = self.client
        router = client.router
        self.tracked = False  # the stream path ends the count when the response is out
        self.upstream = None
        upstream.exchange = None
        client.exchange = None
        router._clients.discard(client)
        ureader, uwriter = to_streams(upstream.transport, rest, upstream.eof, False)
        upstream.converted = True
        conn = Connection(self.backend, ureader, uwriter, reused=upstream.reused)
        data, client.buf = client.buf, b""
        creader, cwriter = to_streams(client.transport, data, client.eof, client.write_paused)
        client.gone = True
        router._spawn_stream(
            router._finish_converted(self.req, resp, conn, creader, cwriter, self.backend)
        )


class UpstreamConnection(asyncio.Protocol):
    """A kept-alive connection to one app process, used by one exchange at a time."""

    __slots__ = (
        "backend",
        "buf",
        "closed",
        "converted",
        "eof",
        "exchange",
        "idle_since",
        "remaining",
        "resp",
        "reused",
        "transport",
    )

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.exchange: Exchange | None = None
        self.buf = b""
        self.resp: Response | None = None
        self.remaining = 0
        self.idle_since = 0.0
        self.reused = False
        self.closed = False
        self.eof = False
        self.converted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, exchange: Exchange) -> None:
        self.exchange = exchange
        exchange.upstream = self
        self.buf = b""
        self.resp = None
        if exchange.client.write_paused:
            self.transport.pause_reading()
        self.transport.write(exchange.payload)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            self.transport.close()  # nothing was asked: the connection cannot be trusted
            return
        if self.resp is None:
            self._head(exchange, self.buf + data if self.buf else data)
            return
        if len(data) > self.remaining:
            data = data[: self.remaining]  # more than announced: not reusable
            self.resp.close = True
        self.remaining -= len(data)
        exchange.client.transport.write(data)
        exchange.deadline = time.monotonic() + exchange.client.router.read_timeout
        if not self.remaining:
            exchange.finish(reusable=not self.resp.close)

    def _head(self, exchange: Exchange, buf: bytes) -> None:
        router = exchange.client.router
        req = exchange.req
        while True:
            end = buf.find(HEAD_END)
            if end < 0:
                if len(buf) > MAX_HEAD:
                    exchange.bad_gateway("response head too large")
                else:
                    self.buf = buf
                return
            try:
                resp = parse_response(buf[: end + 4])
            except ProtocolError as exc:
                exchange.bad_gateway(f"invalid response: {exc.reason}")
                return
            buf = buf[end + 4 :]
            # Interim 1xx responses are dropped, as on the stream path.
            if resp.status >= 200 or resp.status == 101:
                break
        self.buf = b""
        kind = response_body(req.method, resp)
        if resp.status == 101 or (kind != BODY_NONE and kind != BODY_LENGTH):
            exchange.convert(self, resp, buf)
            return
        head, exchange.keep = router._response_head(req, resp, kind)
        length = (resp.length or 0) if kind == BODY_LENGTH else 0
        body = buf[:length]
        if len(buf) > length:
            resp.close = True  # bytes past the announced end: the connection is out of step
        self.resp = resp
        self.remaining = length - len(body)
        exchange.responded = True
        exchange.client.transport.write(head + body if body else head)
        if not self.remaining:
            exchange.finish(reusable=not resp.close)

    def eof_received(self) -> bool:
        self.eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange = self.exchange
        if exchange is not None and not self.converted:
            self.exchange = None
            exchange.upstream = None
            exchange.upstream_lost(exc, partial=bool(self.buf))


class FastPool:
    """Idle fast-path connections per process, most recently used first."""

    def __init__(self, idle_timeout: float, max_idle: int = 256) -> None:
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: dict[str, list[UpstreamConnection]] = {}

    def acquire(self, backend: str) -> UpstreamConnection | None:
        idle = self._idle.get(backend)
        if not idle:
            return None
        horizon = time.monotonic() - self.idle_timeout
        while idle:
            upstream = idle.pop()
            if upstream.idle_since > horizon and not (upstream.closed or upstream.eof):
                upstream.reused = True
                return upstream
            upstream.transport.close()
        return None

    def release(self, upstream: UpstreamConnection) -> None:
        if upstream.closed or upstream.eof:
            upstream.transport.close()
            return
        upstream.idle_since = time.monotonic()
        idle = self._idle.get(upstream.backend)
        if idle is None:
            idle = self._idle[upstream.backend] = []
        idle.append(upstream)
        if len(idle) > self.max_idle:
            idle.pop(0).transport.close()

    def sweep(self) -> None:
        horizon = time.monotonic() - self.idle_timeout
        for backend in list(self._idle):
            idle = self._idle[backend]
            keep = [u for u in idle if u.idle_since > horizon and not (u.closed or u.eof)]
            for upstream in idle:
                if upstream not in keep:
                    upstream.transport.close()
            if keep:
                self._idle[backend] = keep
            else:
                del self._idle[backend]

    def idle_count(self, backend: str) -> int:
        return len(self._idle.get(backend, ()))

    def close(self) -> None:
        for idle in self._idle.values():
            for upstream in idle:
                upstream.transport.close()
        self._idle.clear()
