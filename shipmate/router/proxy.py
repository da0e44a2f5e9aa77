"""The router: the HTTP front door that sends each request to a process of an app.

`<service>.<app>.localhost` names the destination; the RouteTable says which processes
currently serve it. The design is a plain asyncio server speaking HTTP/1.1 on both sides
(see http1.py) with a pool of kept-alive connections per process (see upstream.py): no
framework sits between the sockets, because the router's own overhead is what users wait
for on every request and what is benchmarked against HAProxy.

Bodies are streamed in both directions and never interpreted. Small request bodies are read
up front so that a request can be replayed on another connection when a process vanishes
before answering; connection failures before anything is sent fall through to the next
process, so a process that just died costs a retry, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Coroutine, Sequence
from http import HTTPStatus
from typing import Any

from shipmate.router.fast import ClientConnection, Exchange, FastPool, UpstreamConnection
from shipmate.router.http1 import (
    BODY_CHUNKED,
    BODY_EOF,
    BODY_LENGTH,
    BODY_NONE,
    CRLF,
    HEAD_END,
    HOP_BY_HOP,
    IDEMPOTENT,
    READ_CHUNK,
    NullSink,
    ProtocolError,
    RelayError,
    Request,
    Response,
    build_head,
    describe,
    parse_request,
    parse_response,
    read_exactly,
    relay_chunked,
    relay_length,
    relay_until_eof,
    response_body,
    write,
)
from shipmate.router.table import RouteTable
from shipmate.router.upstream import ConnectError, Connection, UpstreamPool

log = logging.getLogger(__name__)

# Request bodies up to this size are read before contacting a process (one write upstream,
# and the request stays replayable); bigger ones are streamed.
BUFFER_BODY = 64 * 1024
# Most of a request body the router reads just to throw away before an error page (reading
# it lets the client see the page instead of a connection reset).
DISCARD_CAP = 1024 * 1024
DISCARD_TIMEOUT = 5.0
# The router sets these itself; values from clients would let them spoof their origin.
_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto"})
_CLIENT_TO_UPSTREAM = ("client", "upstream")
_UPSTREAM_TO_CLIENT = ("upstream", "client")
_LABEL = re.compile(r"[a-z0-9][a-z0-9_-]*")
_MISSING: object = object()
# How often idle connections and deadlines are checked.
SWEEP_INTERVAL = 1.0


def parse_host(host_header: str, domain: str = "localhost") -> tuple[str, str] | None:
    """ "web.myapp.localhost:7080" -> ("web", "myapp"), i.e. (service, app); else None."""
    host = host_header.strip().lower()
    name, _, port = host.partition(":")
    if port and not port.isdigit():
        return None
    suffix = "." + domain.lower().strip(".")
    name = name.rstrip(".")  # a fully qualified "web.myapp.localhost." is the same host
    if not name.endswith(suffix):
        return None
    labels = name[: -len(suffix)].split(".")
    if len(labels) != 2:
        return None
    service, app = labels
    if not _LABEL.fullmatch(service) or not _LABEL.fullmatch(app):
        return None
    return service, app


class _Retry(Exception):
    """This attempt failed before the client saw anything; another one may succeed.

    `stale` means a reused connection died, so a fresh connection to the same process is
    worth one try (the process probably closed an idle connection, it is not down).
    """

    def __init__(self, reason: str, *, stale: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stale = stale


class Router:
    def __init__(
        self,
        table: RouteTable,
        host: str = "127.0.0.1",
        port: int = 7080,
        domain: str = "localhost",
        *,
        read_timeout: float = 60.0,
        connect_timeout: float = 5.0,
        keepalive_timeout: float = 75.0,
        reuse_port: bool = False,
    ) -> None:
        self.table = table
        # Several router processes share the port (SO_REUSEPORT; see workers.py).
        self.reuse_port = reuse_port
        self.host = host
        self.port = port
        self.domain = domain.lower().strip(".")
        self.read_timeout = read_timeout
        self.keepalive_timeout = keepalive_timeout
        self._pool = UpstreamPool(connect_timeout=connect_timeout)
        # The fast path (fast.py): its client connections and its own upstream connections.
        self._clients: set[ClientConnection] = set()
        self._fast_pool = FastPool(idle_timeout=self._pool.idle_timeout)
        self._streams: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        # Client connections -> whether an exchange is in progress (stop() spares those).
        self._connections: dict[asyncio.Task[object], bool] = {}
        self._stopping = False
        # Host header -> parse_host result; hosts repeat, parsing them on every request is waste.
        self._routes: dict[bytes, tuple[str, str] | None] = {}

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._stopping = False
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientConnection(self),
            self.host,
            self.port,
            backlog=1024,
            reuse_port=self.reuse_port or None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening, close idle client connections, give exchanges in progress up to
        `grace` seconds to finish, then close everything."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        deadline = asyncio.get_running_loop().time() + grace
        for client in list(self._clients):
            if client.exchange is None:
                client.transport.close()
        for task, busy in list(self._connections.items()):
            if not busy:
                task.cancel()
        pending = set(self._connections)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # Fast-path exchanges in progress close their connection when they finish.
        while self._clients and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for client in list(self._clients):
            client.transport.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._pool.close()
        self._fast_pool.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self._pool.sweep()
            self._fast_pool.sweep()
            now = loop.time()
            for client in list(self._clients):
                client.check(now)

    # --- the fast path's ways out (see fast.py) ------------------------------------------------

    def _spawn_stream(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)

    async def _fast_connect(self, exchange: Exchange) -> None:
        backend = exchange.backend
        host, _, port = backend.rpartition(":")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._pool.connect_timeout):
                _, upstream = await loop.create_connection(
                    lambda: UpstreamConnection(backend), host, int(port)
                )
        except (OSError, TimeoutError):
            exchange.connecting = None
            if exchange.client.exchange is exchange:
                exchange.retry_elsewhere()  # nothing was sent: the stream path tries the rest
            return
        exchange.connecting = None
        if exchange.client.exchange is not exchange:
            upstream.transport.close()  # the client went away meanwhile
            return
        upstream.send(exchange)

    async def _finish_converted(
        self,
        req: Request,
        resp: Response,
        conn: Connection,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
        backend: str,
    ) -> None:
        """Relay a response the fast path handed over, then serve the client connection."""
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = True
        keep = reusable = False
        try:
            keep, reusable = await self._respond(req, resp, conn, creader, cwriter, backend)
        except Exception:
            log.exception("router: unexpected error relaying a response")
        finally:
            self.table.end(backend)
            self._pool.release(conn, reusable=reusable)
            self._connections.pop(task, None)
        if keep:
            await self._serve(creader, cwriter)
        else:
            cwriter.close()

    # --- client connections ----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = False
        peer = writer.get_extra_info("peername")
        client_ip = str(peer[0]).encode() if isinstance(peer, tuple) else b"unknown"
        try:
            while not self._stopping:
                try:
                    async with asyncio.timeout(self.keepalive_timeout):
                        head = await reader.readuntil(HEAD_END)
                except asyncio.LimitOverrunError:
                    await self._reply(writer, 431, "request head too large", keep=False)
                    return
                except (asyncio.IncompleteReadError, TimeoutError, OSError):
                    return  # the client went away or stayed idle too long: nothing to answer
                if head[:2] == CRLF:
                    # Stray CRLFs between requests are to be ignored (RFC 9112 2.2).
                    head = head.lstrip(CRLF)
                    if not head:
                        continue
                self._connections[task] = True
                try:
                    request = parse_request(head)
                except ProtocolError as exc:
                    await self._reply(writer, exc.status, f"bad request: {exc.reason}", keep=False)
                    return
                if not await self._exchange(request, reader, writer, client_ip):
                    return
                self._connections[task] = False
        except (OSError, RelayError):
            pass  # the client vanished while being answered
        except Exception:
            log.exception("router: unexpected error on a client connection")
        finally:
            self._connections.pop(task, None)
            writer.close()

    def _route(self, host: bytes) -> tuple[str, str] | None:
        route = self._routes.get(host, _MISSING)
        if route is _MISSING:
            route = parse_host(host.decode("latin-1"), self.domain)
            if len(self._routes) >= 4096:
                self._routes.clear()
            self._routes[host] = route
        return route  # type: ignore[return-value]

    async def _exchange(
        self,
        req: Request,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
        client_ip: bytes,
    ) -> bool:
        """Answer one request; True when the client connection can carry another."""
        route = self._route(req.host)
        candidates = None if route is None else self.table.candidates(route[1], route[0])
        if route is None or candidates is None:
            host = req.host.decode("latin-1")[:200] or "(no Host header)"
            message = f"no app at {host}; use <service>.<app>.{self.domain}"
            return await self._refuse(req, creader, cwriter, 404, message, continued=False)
        service, app = route
        if not candidates:
            message = f"no healthy process for service {service} of app {app}"
            return await self._refuse(req, creader, cwriter, 503, message, continued=False)

        continued = False
        if req.expect_continue and req.body != BODY_NONE and req.version == b"HTTP/1.1":
            # Answer the expectation here: the router is about to read the body anyway, and
            # the process then never has to deal with Expect.
            cwriter.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            continued = True
        body: bytes | None = b""
        if req.body == BODY_LENGTH and req.length <= BUFFER_BODY:
            try:
                body = await read_exactly(creader, req.length, "client", self.read_timeout)
            except RelayError:
                return False
        elif req.body != BODY_NONE:
            body = None  # streamed once a process is connected
        head = self._upstream_head(req, client_ip)
        replayable = body is not None and req.method in IDEMPOTENT

        failed, reason = candidates[0], "no process answered"
        if not all(self.table.has_backend(app, service, b) for b in candidates):
            # The route changed while the body was being read: the runtime may already have
            # drained a process listed then, and be stopping it.
            candidates = self.table.candidates(app, service) or candidates
        for backend in candidates:
            fresh = False
            while True:
                # Checked right before counting the request in flight, with no await between:
                # once the runtime has removed a process and seen it drained, no request can
                # start on it any more.
                if not self.table.has_backend(app, service, backend):
                    break
                try:
                    with self.table.track(backend):
                        return await self._attempt(
                            req, head, body, backend, creader, cwriter, fresh, replayable
                        )
                except _Retry as retry:
                    failed, reason = backend, retry.reason
                    if retry.stale and not fresh:
                        fresh = True
                        continue
                    break
        log.warning("router: %s.%s: process %s failed: %s", service, app, failed, reason)
        message = f"process {failed} failed: {reason}"
        if body is None:
            return await self._refuse(req, creader, cwriter, 502, message, continued=continued)
        return await self._reply(cwriter, 502, message, keep=req.keep_alive, request=req)

    def _upstream_head(self, req: Request, client_ip: bytes) -> bytes:
        drop = req.connection_tokens
        lines = [b"Host: " + req.host]
        forwarded_for: list[bytes] = []
        for name, value, line in req.headers:
            if name in HOP_BY_HOP or name in drop or name == b"host":
                continue
            if name in _FORWARDED:
                if name == b"x-forwarded-for":
                    forwarded_for.append(value)
                continue
            if name == b"expect" and req.expect_continue:
                continue
            lines.append(line)
        forwarded_for.append(client_ip)
        lines.append(b"X-Forwarded-For: " + b", ".join(forwarded_for))
        lines.append(b"X-Forwarded-Host: " + req.host)
        lines.append(b"X-Forwarded-Proto: http")
        if req.body == BODY_CHUNKED:
            lines.append(b"Transfer-Encoding: chunked")
        if req.upgrade is not None:
            lines.append(b"Connection: Upgrade")
            lines.append(b"Upgrade: " + req.upgrade)
        return build_head(req.method + b" " + req.target + b" HTTP/1.1", lines)

    async def _attempt(
        self,
        req: Request,
        head: bytes,
        body: bytes | None,
        backend: str,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
        fresh: bool,
        replayable: bool,
    ) -> bool:
        """One try at one process. Raises _Retry while the client has seen nothing and the
        request can still go elsewhere; otherwise answers the client and returns keep-alive."""
        try:
            conn = await self._pool.acquire(backend, fresh=fresh)
        except ConnectError as exc:
            raise _Retry(exc.reason, stale=False) from None
        reusable = False
        try:
            # 1. The request.
            upstream = conn.writer
            if body is not None:
                upstream.write(head + body if body else head)
            else:
                upstream.write(head)
                try:
                    if req.body == BODY_LENGTH:
                        await relay_length(
                            creader, upstream, req.length, _CLIENT_TO_UPSTREAM, self.read_timeout
                        )
                    else:
                        await relay_chunked(
                            creader, upstream, _CLIENT_TO_UPSTREAM, self.read_timeout
                        )
                except RelayError as exc:
                    if exc.side == "client":
                        return False
                    return await self._bad_gateway(req, cwriter, backend, exc.reason, keep=False)

            # 2. The response head (interim 1xx responses are dropped: the router already
            # answered Expect itself, and 103 Early Hints are only an optimisation).
            try:
                async with asyncio.timeout(self.read_timeout):
                    while True:
                        resp = parse_response(await conn.reader.readuntil(HEAD_END))
                        if resp.status >= 200 or resp.status == 101:
                            break
            except TimeoutError:
                reason = f"no response within {self.read_timeout:g}s"
                return await self._bad_gateway(req, cwriter, backend, reason, keep=False)
            except (asyncio.IncompleteReadError, OSError) as exc:
                silent = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
                if silent and replayable:
                    raise _Retry(describe(exc), stale=conn.reused) from None
                reason = f"{describe(exc)} before a complete response"
                return await self._bad_gateway(req, cwriter, backend, reason)
            except asyncio.LimitOverrunError:
                return await self._bad_gateway(req, cwriter, backend, "response head too large")
            except ProtocolError as exc:
                reason = f"invalid response: {exc.reason}"
                return await self._bad_gateway(req, cwriter, backend, reason)

            # 3. The response.
            keep, reusable = await self._respond(req, resp, conn, creader, cwriter, backend)
            return keep
        finally:
            self._pool.release(conn, reusable=reusable)

    def _response_head(self, req: Request, resp: Response, kind: int) -> tuple[bytes, bool]:
        """The head the client gets for `resp`, and whether its connection stays open."""
        keep = req.keep_alive and not self._stopping
        drop = resp.connection_tokens
        framed = kind in (BODY_CHUNKED, BODY_EOF)
        lines = [
            line
            for name, _, line in resp.headers
            if name not in HOP_BY_HOP
            and name not in drop
            and not (framed and name == b"content-length")
        ]
        if framed:
            if req.version == b"HTTP/1.1":
                lines.append(b"Transfer-Encoding: chunked")
            else:
                keep = False  # an HTTP/1.0 client can only see the end as a close
        if not keep:
            lines.append(b"Connection: close")
        elif req.version == b"HTTP/1.0":
            lines.append(b"Connection: keep-alive")
        return build_head(b"HTTP/1.1 " + resp.status_line_rest, lines), keep

    async def _respond(
        self,
        req: Request,
        resp: Response,
        conn: Connection,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
        backend: str,
    ) -> tuple[bool, bool]:
        """Relay `resp` (its head already read) to the client: (keep the client connection,
        the upstream connection can be reused)."""
        if resp.status == 101:
            if req.upgrade is None:
                reason = "unrequested upgrade"
                return await self._bad_gateway(req, cwriter, backend, reason), False
            await self._tunnel(creader, cwriter, conn, resp)
            return False, False
        kind = response_body(req.method, resp)
        out, keep = self._response_head(req, resp, kind)
        timeout = self.read_timeout
        try:
            if kind == BODY_NONE:
                await write(cwriter, out, "client")
            elif kind == BODY_LENGTH:
                length = resp.length or 0
                if length <= BUFFER_BODY:
                    # One write for head and body: one syscall, one packet for small pages.
                    data = await read_exactly(conn.reader, length, "upstream", timeout)
                    await write(cwriter, out + data, "client")
                else:
                    await write(cwriter, out, "client")
                    await relay_length(conn.reader, cwriter, length, _UPSTREAM_TO_CLIENT, timeout)
            elif kind == BODY_CHUNKED:
                await write(cwriter, out, "client")
                dechunk = req.version != b"HTTP/1.1"
                await relay_chunked(
                    conn.reader, cwriter, _UPSTREAM_TO_CLIENT, timeout, dechunk=dechunk
                )
            else:
                await write(cwriter, out, "client")
                chunk = req.version == b"HTTP/1.1"
                await relay_until_eof(
                    conn.reader, cwriter, _UPSTREAM_TO_CLIENT, timeout, chunk=chunk
                )
        except RelayError as exc:
            if exc.side == "upstream":
                # The head may be out already; closing the client connection is the only
                # way left to tell it the response is incomplete.
                log.warning("router: process %s failed mid-response: %s", backend, exc.reason)
            return False, False
        return keep, not resp.close and kind != BODY_EOF

    async def _tunnel(
        self,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
        conn: Connection,
        resp: Response,
    ) -> None:
        """After a 101 (e.g. WebSocket) the connection is no longer HTTP: copy bytes both ways
        until both sides are done."""
        upgrade = next((value for name, value, _ in resp.headers if name == b"upgrade"), b"")
        drop = resp.connection_tokens
        lines = [
            line for name, _, line in resp.headers if name not in HOP_BY_HOP and name not in drop
        ]
        lines += [b"Connection: Upgrade", b"Upgrade: " + upgrade]
        await write(cwriter, build_head(b"HTTP/1.1 " + resp.status_line_rest, lines), "client")

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(READ_CHUNK):
                    dst.write(data)
                    await dst.drain()
                if dst.can_write_eof():
                    dst.write_eof()  # pass the half-close on; the other direction may go on
            except OSError:
                dst.close()

        await asyncio.gather(pump(creader, conn.writer), pump(conn.reader, cwriter))

    # --- answers the router gives itself -----------------------------------------------------

    async def _bad_gateway(
        self,
        req: Request,
        cwriter: asyncio.StreamWriter,
        backend: str,
        reason: str,
        *,
        keep: bool = True,
    ) -> bool:
        log.warning("router: process %s failed: %s", backend, reason)
        message = f"process {backend} failed: {reason}"
        return await self._reply(cwriter, 502, message, keep=keep and req.keep_alive, request=req)

    async def _refuse(
        self,
        req: Request,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
        status: int,
        message: str,
        *,
        continued: bool,
    ) -> bool:
        """Answer with an error page a request whose body has not been read."""
        keep = req.keep_alive
        if req.body != BODY_NONE:
            if req.expect_continue and not continued:
                keep = False  # the client is waiting for a go-ahead and will not send the body
            elif req.body == BODY_LENGTH and req.length > DISCARD_CAP:
                keep = False
            else:
                # Read the body so the connection stays usable, and so that closing does not
                # reset it under the client before it has read the page.
                sink = NullSink(DISCARD_CAP)
                try:
                    if req.body == BODY_LENGTH:
                        await relay_length(
                            creader, sink, req.length, ("client", "sink"), DISCARD_TIMEOUT
                        )
                    else:
                        await relay_chunked(
                            creader, sink, ("client", "sink"), DISCARD_TIMEOUT, dechunk=True
                        )
                except RelayError as exc:
                    if exc.side == "client":
                        return False
                    keep = False
        return await self._reply(cwriter, status, message, keep=keep, request=req)

    async def _reply(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        message: str,
        *,
        keep: bool,
        request: Request | None = None,
    ) -> bool:
        data, keep = self._page(status, message, keep=keep, request=request)
        await write(writer, data, "client")
        return keep

    def _page(
        self, status: int, message: str, *, keep: bool, request: Request | None = None
    ) -> tuple[bytes, bool]:
        """An error page of the router's own, and whether the connection stays open."""
        keep = keep and not self._stopping
        body = f"shipmate router: {message}\n".encode()
        lines = [b"Content-Type: text/plain; charset=utf-8", b"Content-Length: %d" % len(body)]
        if not keep:
            lines.append(b"Connection: close")
        elif request is not None and request.version == b"HTTP/1.0":
            lines.append(b"Connection: keep-alive")
        phrase = HTTPStatus(status).phrase.encode()
        data = build_head(b"HTTP/1.1 %d %b" % (status, phrase), lines)
        if request is None or request.method != b"HEAD":
            data += body
        return data, keep


# --- manual testing ----------------------------------------------------------------------------


def _parse_route(text: str) -> tuple[str, str, list[str]]:
    target, sep, backends = text.partition("=")
    app, slash, service = target.partition("/")
    if not sep or not slash or not app or not service:
        raise argparse.ArgumentTypeError(
            f"expected APP/SERVICE=HOST:PORT[,HOST:PORT], got {text!r}"
        )
    return app, service, [b for b in backends.split(",") if b]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m shipmate.router.proxy",
        description="Run the shipmate router with a fixed routing table (for manual testing).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7080)
    parser.add_argument("--domain", default="localhost")
    parser.add_argument(
        "--route",
        action="append",
        default=[],
        type=_parse_route,
        metavar="APP/SERVICE=HOST:PORT[,HOST:PORT]",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    table = RouteTable()
    for app, service, backends in args.route:
        table.set_backends(app, service, backends)

    async def run() -> None:
        router = Router(table, args.host, args.port, args.domain)
        await router.start()
        print(f"shipmate router listening on {router.url}", flush=True)
        for app, services in table.snapshot().items():
            for service, backends in services.items():
                print(f"  {service}.{app}.{router.domain} -> {', '.join(backends)}", flush=True)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Handled rather than left to default actions so in-flight requests get to finish.
            loop.add_signal_handler(signum, done.set)
        try:
            await done.wait()
        finally:
            await router.stop(grace=5)

    asyncio.run(run())


if __name__ == "__main__":
    main()
