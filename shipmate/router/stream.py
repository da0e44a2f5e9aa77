"""The router's stream path: asyncio streams, the whole of the protocol.

It answers everything the fast path (fast.py) leaves to it: error pages, chunked and large
bodies (streamed in both directions, never interpreted), `Expect: 100-continue`, upgrades,
HTTP/1.0, and retries on other processes. Small request bodies are read up front so that a
request can be replayed on another connection when a process vanishes before answering;
connection failures before anything is sent fall through to the next process, so a process
that just died costs a retry, not an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from shipmate.router.gateway import Gateway
from shipmate.router.http1 import (
    BODY_CHUNKED,
    BODY_EOF,
    BODY_LENGTH,
    BODY_NONE,
    CRLF,
    HEAD_END,
    IDEMPOTENT,
    ProtocolError,
    Request,
    Response,
    parse_request,
    parse_response,
    response_body,
)
from shipmate.router.relays import (
    READ_CHUNK,
    NullSink,
    RelayError,
    describe,
    read_exactly,
    relay_chunked,
    relay_length,
    relay_until_eof,
    write,
)
from shipmate.router.upstream import ConnectError, Connection, open_streams

log = logging.getLogger("shipmate.router.proxy")

# Request bodies up to this size are read before contacting a process (one write upstream,
# and the request stays replayable); bigger ones are streamed.
BUFFER_BODY = 64 * 1024
# Most of a request body the router reads just to throw away before an error page (reading
# it lets the client see the page instead of a connection reset).
DISCARD_CAP = 1024 * 1024
DISCARD_TIMEOUT = 5.0
_CLIENT_TO_UPSTREAM = ("client", "upstream")
_UPSTREAM_TO_CLIENT = ("upstream", "client")


class _Retry(Exception):
    """This attempt failed before the client saw anything; another one may succeed.

    `stale` means a reused connection died, so a fresh connection to the same process is
    worth one try (the process probably closed an idle connection, it is not down).
    """

    def __init__(self, reason: str, *, stale: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stale = stale


class StreamPath:
    """Client connections served with streams, one task each."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        # Client connections -> whether an exchange is in progress (stop() spares those).
        self.connections: dict[asyncio.Task[object], bool] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` (a hand-over from the fast path) as a task of this path."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, grace: float) -> None:
        """Close idle connections, give exchanges in progress `grace` seconds, then cancel."""
        for task, busy in list(self.connections.items()):
            if not busy:
                task.cancel()
        pending = set(self.connections)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # --- client connections --------------------------------------------------------------------

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections[task] = False
        peer = writer.get_extra_info("peername")
        client_ip = str(peer[0]).encode() if isinstance(peer, tuple) else b"unknown"
        # Connections of the HTTPS listener are TLS transports; the rest are plain.
        secure = writer.get_extra_info("ssl_object") is not None
        gateway = self.gateway
        try:
            while not gateway.stopping:
                try:
                    async with asyncio.timeout(gateway.keepalive_timeout):
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
                self.connections[task] = True
                try:
                    request = parse_request(head)
                except ProtocolError as exc:
                    await self._reply(writer, exc.status, f"bad request: {exc.reason}", keep=False)
                    return
                if not await self._exchange(request, reader, writer, client_ip, secure):
                    return
                self.connections[task] = False
        except (OSError, RelayError):
            pass  # the client vanished while being answered
        except Exception:
            log.exception("router: unexpected error on a client connection")
        finally:
            self.connections.pop(task, None)
            writer.close()

    async def finish_converted(
        self,
        req: Request,
        resp: Response,
        conn: Connection,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
    ) -> None:
        """Relay a response the fast path handed over (its head read, the request counted in
        flight), then serve the client connection."""
        task = asyncio.current_task()
        assert task is not None
        self.connections[task] = True
        keep = reusable = False
        try:
            keep, reusable = await self._respond(req, resp, conn, creader, cwriter)
        except Exception:
            log.exception("router: unexpected error relaying a response")
        finally:
            self.gateway.table.end(conn.backend)
            self.gateway.pool.release_streams(conn, reusable=reusable)
            self.connections.pop(task, None)
        if keep:
            await self.serve(creader, cwriter)
        else:
            cwriter.close()

    async def _exchange(
        self,
        req: Request,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
        client_ip: bytes,
        secure: bool,
    ) -> bool:
        """Answer one request; True when the client connection can carry another."""
        gateway = self.gateway
        table = gateway.table
        if not secure and table.sites.active:
            special = gateway.special(req)
            if special is not None:
                await write(cwriter, special[0], "client")
                return special[1]
        route = gateway.route(req.host)
        candidates = None if route is None else table.candidates(route[1], route[0])
        if route is None or candidates is None:
            message = gateway.not_found(req)
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
                body = await read_exactly(creader, req.length, "client", gateway.read_timeout)
            except RelayError:
                return False
        elif req.body != BODY_NONE:
            body = None  # streamed once a process is connected
        head = gateway.upstream_head(req, client_ip, secure)
        replayable = body is not None and req.method in IDEMPOTENT

        failed, reason = candidates[0], "no process answered"
        begun = 0.0  # when the first attempt started, for the count of a 502 after them all
        if not all(table.has_backend(app, service, b) for b in candidates):
            # The route changed while the body was being read: the runtime may already have
            # drained a process listed then, and be stopping it.
            candidates = table.candidates(app, service) or candidates
        for backend in candidates:
            fresh = False
            while True:
                # Checked right before counting the request in flight, with no await between:
                # once the runtime has removed a process and seen it drained, no request can
                # start on it any more.
                if not table.has_backend(app, service, backend):
                    break
                begun = begun or time.monotonic()
                try:
                    with table.track(backend):
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
        if begun:
            gateway.counters.record(failed, 502, begun, time.monotonic())
        message = f"process {failed} failed: {reason}"
        if body is None:
            return await self._refuse(req, creader, cwriter, 502, message, continued=continued)
        return await self._reply(cwriter, 502, message, keep=req.keep_alive, request=req)

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
        gateway = self.gateway
        timeout = gateway.read_timeout
        try:
            conn = open_streams(await gateway.pool.acquire(backend, fresh=fresh))
        except ConnectError as exc:
            raise _Retry(exc.reason, stale=False) from None
        reusable = False
        sent = time.monotonic()
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
                            creader, upstream, req.length, _CLIENT_TO_UPSTREAM, timeout
                        )
                    else:
                        await relay_chunked(creader, upstream, _CLIENT_TO_UPSTREAM, timeout)
                except RelayError as exc:
                    if exc.side == "client":
                        return False
                    return await self._bad_gateway(
                        req, cwriter, backend, exc.reason, keep=False, sent=sent
                    )

            # 2. The response head (interim 1xx responses are dropped: the router already
            # answered Expect itself, and 103 Early Hints are only an optimisation).
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        resp = parse_response(await conn.reader.readuntil(HEAD_END))
                        if resp.status >= 200 or resp.status == 101:
                            break
            except TimeoutError:
                reason = f"no response within {timeout:g}s"
                return await self._bad_gateway(req, cwriter, backend, reason, keep=False, sent=sent)
            except (asyncio.IncompleteReadError, OSError) as exc:
                silent = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
                if silent and replayable:
                    raise _Retry(describe(exc), stale=conn.reused) from None
                reason = f"{describe(exc)} before a complete response"
                return await self._bad_gateway(req, cwriter, backend, reason, sent=sent)
            except asyncio.LimitOverrunError:
                return await self._bad_gateway(
                    req, cwriter, backend, "response head too large", sent=sent
                )
            except ProtocolError as exc:
                reason = f"invalid response: {exc.reason}"
                return await self._bad_gateway(req, cwriter, backend, reason, sent=sent)

            # 3. The response (counted once its head is in).
            gateway.counters.record(backend, resp.status, sent, time.monotonic())
            keep, reusable = await self._respond(req, resp, conn, creader, cwriter)
            return keep
        finally:
            gateway.pool.release_streams(conn, reusable=reusable)

    async def _respond(
        self,
        req: Request,
        resp: Response,
        conn: Connection,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
    ) -> tuple[bool, bool]:
        """Relay `resp` (its head already read) to the client: (keep the client connection,
        the upstream connection can be reused)."""
        backend = conn.backend
        if resp.status == 101:
            if req.upgrade is None:
                reason = "unrequested upgrade"
                return await self._bad_gateway(req, cwriter, backend, reason), False
            await self._tunnel(creader, cwriter, conn, resp)
            return False, False
        kind = response_body(req.method, resp)
        out, keep = self.gateway.response_head(req, resp, kind)
        timeout = self.gateway.read_timeout
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
        await write(cwriter, self.gateway.upgrade_head(resp), "client")

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

    # --- answers the router gives itself -------------------------------------------------------

    async def _bad_gateway(
        self,
        req: Request,
        cwriter: asyncio.StreamWriter,
        backend: str,
        reason: str,
        *,
        keep: bool = True,
        sent: float = 0.0,
    ) -> bool:
        """A 502 for a process that failed; counted on it when `sent` says when the request
        went out (not after a response whose head was counted already)."""
        log.warning("router: process %s failed: %s", backend, reason)
        if sent:
            self.gateway.counters.record(backend, 502, sent, time.monotonic())
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
        data, keep = self.gateway.page(status, message, keep=keep, request=request)
        await write(writer, data, "client")
        return keep
