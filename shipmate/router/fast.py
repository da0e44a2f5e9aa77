"""The router's fast path: asyncio Protocols for the exchanges that make up nearly all traffic.

A request on a kept-alive HTTP/1.1 connection, with no body or a small one, whose answer is
delimited by Content-Length (or has no body), is relayed from callbacks: no task, no future,
no timer per request. That is where the router spends its time under load, and streams cost
about twice the CPU per request (see docs/BENCHMARKS.md).

Everything else goes to the stream path (stream.py), which implements the whole of the
protocol and is tested on its own:

- a request the fast path does not take is handed over with its connection before anything
  was sent anywhere (`ClientConnection.handoff`): the stream path reads it again from the
  bytes buffered here;
- a response the fast path does not take (chunked, close-delimited, 101) is handed over with
  both connections after its head was read (`Exchange.convert`); the stream path relays it
  and goes on serving the client connection.

In-flight accounting is the same on both paths (counted on its process from the moment it is
routed until the whole response is written, so wait_drained holds); deadlines are checked by
the router's once-a-second sweep. The HTTPS listener has a fast path of its own (`secure`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from shipmate.router.gateway import Gateway
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
    RequestReader,
    Response,
    ResponseReader,
    response_body,
)
from shipmate.router.stream import StreamPath
from shipmate.router.upstream import ConnectError, Link, open_streams, to_streams

log = logging.getLogger("shipmate.router.proxy")

FAST_BODY = 64 * 1024  # small bodies are the fast path's (the bound the stream path buffers)
# Bytes a client may send ahead (pipelining) while its previous request is being answered.
MAX_AHEAD = MAX_HEAD + FAST_BODY


class FastPath:
    """The client connections on the fast path, and its ways into the stream path."""

    def __init__(self, gateway: Gateway, streams: StreamPath, *, secure: bool = False) -> None:
        self.gateway = gateway
        self.streams = streams
        self.secure = secure  # the HTTPS listener's: X-Forwarded-Proto: https
        self.clients: set[ClientConnection] = set()

    def protocol(self) -> ClientConnection:
        return ClientConnection(self)  # every connection starts here

    def check(self, now: float) -> None:
        """Called by the router's sweep: enforce the deadlines."""
        for client in list(self.clients):
            client.check(now)

    def close_idle(self) -> None:
        for client in list(self.clients):
            if client.exchange is None:
                client.transport.close()

    def abort(self) -> None:
        for client in list(self.clients):
            client.transport.abort()

    async def connect(self, exchange: Exchange) -> None:
        try:
            link = await self.gateway.pool.connect(exchange.backend)
        except ConnectError:
            exchange.connecting = None
            if exchange.client.exchange is exchange:
                exchange.retry_elsewhere()  # nothing was sent: the stream path tries the rest
            return
        exchange.connecting = None
        if exchange.client.exchange is not exchange:
            link.transport.close()  # the client went away meanwhile
            return
        exchange.sent = time.monotonic()
        exchange.send(link)


class ClientConnection(asyncio.Protocol):
    """One client connection while it is on the fast path."""

    __slots__ = (
        "buf",
        "client_ip",
        "deadline",
        "eof",
        "exchange",
        "fast",
        "gateway",
        "gone",
        "pending",
        "read_paused",
        "reader",
        "transport",
        "write_paused",
    )

    def __init__(self, fast: FastPath) -> None:
        self.fast = fast
        self.gateway = fast.gateway
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.buf = b""
        self.exchange: Exchange | None = None
        self.client_ip = b"unknown"
        self.deadline = 0.0
        self.eof = False
        self.gone = False
        self.read_paused = False
        self.write_paused = False
        self.reader = RequestReader()
        # A request whose head is read (by `reader`) while its body is still arriving.
        self.pending: tuple[Request, int] | None = None

    # --- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client_ip = str(peer[0]).encode()
        self.fast.clients.add(self)
        self.deadline = time.monotonic() + self.gateway.keepalive_timeout
        if self.gateway.stopping:
            transport.close()

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        if self.exchange is None:
            self.deadline = time.monotonic() + self.gateway.keepalive_timeout
            self.next()
        elif len(self.buf) > MAX_AHEAD and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        if self.exchange is None:
            self.next()
        return True  # keep the write side open for a response in progress

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        self.fast.clients.discard(self)
        if self.exchange is not None:
            self.exchange.abort()

    def pause_writing(self) -> None:
        self.write_paused = True
        exchange = self.exchange
        if exchange is not None and exchange.link is not None:
            exchange.link.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        exchange = self.exchange
        if exchange is not None and exchange.link is not None:
            exchange.link.transport.resume_reading()

    # --- requests -----------------------------------------------------------------------------

    def next(self) -> None:
        """Start the next request in the buffer once it is complete."""
        if self.gone:
            return
        gateway = self.gateway
        buf = self.buf
        if self.pending is not None:
            req, end = self.pending
        else:
            end = buf.find(HEAD_END)
            if end < 0 or buf[:2] == CRLF:
                if len(buf) > MAX_HEAD or buf[:2] == CRLF:
                    self.handoff()
                elif self.eof or gateway.stopping:
                    self.transport.close()
                return
            try:
                req = self.reader.read(buf[: end + 4])
            except ProtocolError:
                self.handoff()  # the stream path answers 400 with the reason
                return
            if (
                req.version != b"HTTP/1.1"
                or req.upgrade is not None
                or req.expect_continue
                or req.body == BODY_CHUNKED
                or (req.body == BODY_LENGTH and req.length > FAST_BODY)
                or gateway.stopping
                or not self.reader.usable  # CONNECT
            ):
                self.handoff()
                return
        total = end + 4 + (req.length if req.body == BODY_LENGTH else 0)
        if len(buf) < total:
            if self.eof:
                self.transport.close()
            else:
                self.pending = req, end  # the rest of the body is on its way
            return
        self.pending = None
        if not self.fast.secure and gateway.table.sites.active and gateway.special(req) is not None:
            return self.handoff()  # redirects and ACME answers: the stream path's
        candidates = gateway.candidates(req.host)
        if not candidates:
            self.handoff()  # 404 and 503 pages come from the stream path
            return
        raw = buf[:total]
        self.buf = buf[total:]
        body = raw[end + 4 :]
        if body:
            self.reader.body(body)
        # No await since the candidates were read, so the first one is still routed: counted
        # in flight from here, it is one the runtime waits for before stopping its process.
        exchange = Exchange(self, req, raw, candidates[0])
        self.exchange = exchange
        gateway.table.begin(exchange.backend)
        exchange.payload = gateway.upstream_head(req, self.client_ip, self.fast.secure) + body
        # Also when the request goes out, for its latency, unless a connection is opened first.
        exchange.sent = now = time.monotonic()
        exchange.deadline = now + gateway.read_timeout
        link = gateway.pool.take(exchange.backend)
        if link is not None:
            exchange.send(link)
        else:
            exchange.connecting = asyncio.ensure_future(self.fast.connect(exchange))

    def handoff(self, replay: bytes = b"") -> None:
        """Leave this connection to the stream path, from `replay` + what is buffered."""
        self.fast.clients.discard(self)
        data, self.buf = replay + self.buf, b""
        self.pending = None
        if self.gone:
            return
        reader, writer = to_streams(self.transport, data, self.eof, self.write_paused)
        self.gone = True  # no callback reaches this object any more
        streams = self.fast.streams
        streams.spawn(streams.serve(reader, writer))

    def finished(self, keep: bool) -> None:
        """The exchange in progress is over; go on with the next request, if any."""
        self.exchange = None
        if not keep or self.gateway.stopping or self.gone:
            self.transport.close()
            return
        self.deadline = time.monotonic() + self.gateway.keepalive_timeout
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        if self.buf or self.eof:
            self.next()

    def check(self, now: float) -> None:
        exchange = self.exchange
        if exchange is not None:
            if now > exchange.deadline:
                exchange.timed_out()
        elif now > self.deadline:
            self.transport.close()


class Exchange(asyncio.Protocol):
    """One request on the fast path, from routing to the end of its response; it gets the
    callbacks of its upstream connection (as the Link's `user`) while it has one."""

    __slots__ = (
        "backend",
        "buf",
        "client",
        "connecting",
        "deadline",
        "eof",
        "keep",
        "link",
        "payload",
        "raw",
        "remaining",
        "req",
        "resp",
        "sent",
        "tracked",
    )

    def __init__(self, client: ClientConnection, req: Request, raw: bytes, backend: str) -> None:
        self.client = client
        self.req = req
        self.raw = raw
        self.backend = backend
        self.payload = b""
        self.link: Link | None = None
        self.connecting: asyncio.Future[None] | None = None
        self.deadline = 0.0
        self.keep = False
        self.tracked = True
        self.sent = 0.0  # when the request started going out: the latency counted is from here
        # The upstream side: bytes of a response head not complete yet, the response once
        # its head is out to the client, what is left of its body, the process's FIN.
        self.buf = b""
        self.resp: Response | None = None
        self.remaining = 0
        self.eof = False

    def send(self, link: Link) -> None:
        self.link = link
        link.user = self
        transport = link.transport
        if self.client.write_paused:
            transport.pause_reading()
        transport.write(self.payload)

    def _untrack(self) -> None:
        if self.tracked:
            self.tracked = False
            self.client.gateway.table.end(self.backend)

    def _drop_link(self) -> None:
        link = self.link
        if link is not None:
            self.link = None
            link.user = None
            link.lost = True
            link.transport.close()

    def finish(self, reusable: bool) -> None:
        """The whole response is written to the client."""
        self._untrack()
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        link = self.link
        if link is not None:
            if reusable and not self.eof:
                self.link = None
                self.client.gateway.pool.resume(link)
            else:
                self._drop_link()
        self.client.finished(self.keep)

    def abort(self) -> None:
        """The client went away: nothing left to answer."""
        self._untrack()
        if self.connecting is not None:
            self.connecting.cancel()
        self._drop_link()
        self.client.exchange = None

    def retry_elsewhere(self) -> None:
        """Nothing reached the client: the stream path routes the request again from scratch
        (another process, a fresh connection) and writes the error page if all fail."""
        self._untrack()
        self._drop_link()
        client = self.client
        client.exchange = None
        client.handoff(replay=self.raw)

    def bad_gateway(self, reason: str, *, keep: bool = True) -> None:
        client = self.client
        log.warning("router: process %s failed: %s", self.backend, reason)
        now = time.monotonic()
        client.gateway.counters.record(self.backend, 502, self.sent or now, now)
        page, keep = client.gateway.page(
            502, f"process {self.backend} failed: {reason}", keep=keep and self.req.keep_alive
        )
        if not client.gone:
            client.transport.write(page)
        self.keep = keep
        self.finish(reusable=False)

    def timed_out(self) -> None:
        if self.resp is not None:
            log.warning("router: process %s stalled mid-response", self.backend)
            self.keep = False
            self.finish(reusable=False)
        else:
            reason = f"no response within {self.client.gateway.read_timeout:g}s"
            self.bad_gateway(reason, keep=False)

    def convert(self, resp: Response, rest: bytes) -> None:
        """Hand the response (and then the client connection) to the stream path."""
        client = self.client
        link = self.link
        assert link is not None
        self.tracked = False  # the stream path ends the count when the response is out
        self.link = None
        client.exchange = None
        client.fast.clients.discard(client)
        conn = open_streams(link, rest, self.eof)
        data, client.buf = client.buf, b""
        creader, cwriter = to_streams(client.transport, data, client.eof, client.write_paused)
        client.gone = True
        streams = client.fast.streams
        streams.spawn(streams.finish_converted(self.req, resp, conn, creader, cwriter))

    # --- the upstream connection's callbacks ---------------------------------------------------

    def data_received(self, data: bytes) -> None:
        resp = self.resp
        if resp is None:
            self._head(self.buf + data if self.buf else data)
            return
        if len(data) > self.remaining:
            data = data[: self.remaining]  # more than announced: not reusable
            resp.close = True
        self.remaining -= len(data)
        reader = self.link.reader if self.link is not None else None
        if reader is not None:
            reader.body(data)
        client = self.client
        client.transport.write(data)
        self.deadline = time.monotonic() + client.gateway.read_timeout
        if not self.remaining:
            self.finish(reusable=not resp.close)

    def _head(self, buf: bytes) -> None:
        req = self.req
        while True:
            end = buf.find(HEAD_END)
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self.bad_gateway("response head too large")
                else:
                    self.buf = buf
                return
            link = self.link
            assert link is not None
            reader = link.reader
            if reader is None or not reader.usable:
                reader = link.reader = ResponseReader()
            try:
                resp = reader.read(buf[: end + 4])
            except ProtocolError as exc:
                self.bad_gateway(f"invalid response: {exc.reason}")
                return
            buf = buf[end + 4 :]
            # Interim 1xx responses are dropped, as on the stream path.
            if resp.status >= 200 or resp.status == 101:
                break
        self.buf = b""
        self.client.gateway.counters.record(self.backend, resp.status, self.sent, time.monotonic())
        kind = response_body(req.method, resp)
        if resp.status == 101 or (kind != BODY_NONE and kind != BODY_LENGTH):
            self.convert(resp, buf)
            return
        head, self.keep = self.client.gateway.response_head(req, resp, kind)
        length = (resp.length or 0) if kind == BODY_LENGTH else 0
        body = buf[:length]
        if len(buf) > length:
            resp.close = True  # bytes past the announced end: the connection is out of step
        if kind == BODY_LENGTH:
            if body:
                reader.body(body)
        elif req.method == b"HEAD":
            link.reader = None  # its parser would wait for the body the head announces
        self.resp = resp
        self.remaining = length - len(body)
        self.client.transport.write(head + body if body else head)
        if not self.remaining:
            self.finish(reusable=not resp.close)

    def eof_received(self) -> bool:
        self.eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        link = self.link
        if link is None:
            return  # already given up on, or handed over
        self.link = None
        link.user = None
        link.lost = True
        if self.resp is not None:
            # The head is out; closing is the only way left to say the body is incomplete.
            log.warning("router: process %s failed mid-response: connection closed", self.backend)
            self.keep = False
            self.finish(reusable=False)
            return
        reason = "connection reset" if isinstance(exc, ConnectionResetError) else None
        reason = reason or ("connection closed" if exc is None else str(exc) or "connection lost")
        if not self.buf and self.req.method in IDEMPOTENT:
            self.retry_elsewhere()
        else:
            self.bad_gateway(f"{reason} before a complete response")
