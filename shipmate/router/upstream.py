"""Kept-alive connections from the router to app processes: one pool for both paths.

Opening a TCP connection per request would cost more than the proxying itself, so connections
are reused. The pool holds each idle connection as a `Link`, the transport's protocol while
nobody uses it; a path that takes one puts its own protocol on the transport (the fast path an
`Exchange`, the stream path a StreamReader through `open_streams`) and gives it back with
`Pool.release`/`Pool.release_streams`. A pooled connection can go stale (the process closed
it when idle, or died): a Link notices bytes or a FIN arriving while idle, and the paths retry
the rest on a fresh connection when that is safe.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from shipmate.common.addresses import split_host_port
from shipmate.router.http1 import MAX_HEAD, ResponseReader
from shipmate.router.relays import describe


class ConnectError(Exception):
    """Could not open a connection to a backend; nothing was sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Link(asyncio.Protocol):
    """One connection to one app process, and its transport's protocol while the fast path
    uses it or nobody does: the fast path's `Exchange` of the moment gets its callbacks as
    `user`. (Changing the transport's protocol instead would cost uvloop a stop and a start
    of reading, two system calls, each time.) The stream path puts a StreamReader's protocol
    on the transport, and `Pool.reattach` puts the Link back."""

    __slots__ = ("backend", "idle_since", "lost", "reader", "reused", "transport", "user")

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.idle_since = 0.0
        self.reused = False
        # Closed, or half-closed by the process: never to be used again.
        self.lost = False
        self.user: asyncio.Protocol | None = None
        # The fast path's parser of the responses on this connection, while it follows them.
        self.reader: ResponseReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        user = self.user
        if user is not None:
            user.data_received(data)
            return
        # Nothing was asked: the connection is out of step and cannot be trusted.
        self.lost = True
        self.transport.close()

    def eof_received(self) -> bool | None:
        self.lost = True
        user = self.user
        return False if user is None else user.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        user = self.user
        if user is not None:
            user.connection_lost(exc)

    def usable(self) -> bool:
        return not self.lost and not self.transport.is_closing()


class _Writer(asyncio.StreamWriter):
    # A StreamWriter closes its transport when it is garbage collected; the stream path
    # drops its writer when it gives the connection back to the pool, which must stay open.
    def __del__(self) -> None:
        pass


def to_streams(
    transport: asyncio.Transport, buffered: bytes, eof: bool, write_paused: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Move a connection from a protocol of the fast path (or the pool) to a
    StreamReader/StreamWriter pair, with the bytes received but not yet used put back in front."""
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
    return reader, _Writer(transport, protocol, reader, loop)


@dataclass(slots=True, eq=False)
class Connection:
    """A pooled connection as the stream path uses it."""

    link: Link
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @property
    def backend(self) -> str:
        return self.link.backend

    @property
    def reused(self) -> bool:
        return self.link.reused

    def usable(self) -> bool:
        # at_eof() is True once the peer's FIN has been read and nothing is left unread.
        return not self.writer.transport.is_closing() and not self.reader.at_eof()


def open_streams(link: Link, buffered: bytes = b"", eof: bool = False) -> Connection:
    link.user = None
    link.reader = None  # the stream path reads responses its own way
    reader, writer = to_streams(link.transport, buffered, eof, False)
    return Connection(link, reader, writer)


class Pool:
    """Idle connections per backend, most recently used first (least likely to be stale).

    `idle_timeout` is kept below the keep-alive timeouts of common app servers (gunicorn 2 s,
    uvicorn and Node 5 s) so the router rarely reuses a connection the process is closing.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        idle_timeout: float = 1.5,
        max_idle_per_backend: int = 256,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle_per_backend
        self._idle: dict[str, list[Link]] = {}
        self._closed = False

    def take(self, backend: str) -> Link | None:
        """An idle connection to `backend`, or None when there is none left worth using."""
        idle = self._idle.get(backend)
        if not idle:
            return None
        horizon = time.monotonic() - self.idle_timeout
        while idle:
            link = idle.pop()
            if link.idle_since > horizon and link.usable():
                link.reused = True
                return link
            link.transport.close()
        return None

    async def connect(self, backend: str) -> Link:
        """A new connection to `backend`; ConnectError when it cannot be opened."""
        host, port = split_host_port(backend)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, link = await loop.create_connection(lambda: Link(backend), host, port)
        except TimeoutError:
            raise ConnectError(f"connect timed out after {self.connect_timeout:g}s") from None
        except OSError as exc:
            raise ConnectError(describe(exc)) from None
        return link

    async def acquire(self, backend: str, *, fresh: bool = False) -> Link:
        link = None if fresh else self.take(backend)
        return link if link is not None else await self.connect(backend)

    def release(self, link: Link) -> None:
        """`link` is idle again: its transport must have it as protocol (see `reattach`)."""
        link.user = None
        if self._closed or not link.usable():
            link.transport.close()
            return
        link.reused = False
        link.idle_since = time.monotonic()
        idle = self._idle.get(link.backend)
        if idle is None:
            idle = self._idle[link.backend] = []
        idle.append(link)
        if len(idle) > self.max_idle:
            idle.pop(0).transport.close()

    def reattach(self, link: Link) -> None:
        """Give `link` its transport back as protocol, reading on, and pool it."""
        link.transport.set_protocol(link)
        self.resume(link)

    def resume(self, link: Link) -> None:
        """Pool `link` after an exchange, reading on."""
        # Reading may be paused for a slow client; the next exchange needs it on.
        link.transport.resume_reading()
        self.release(link)

    def release_streams(self, conn: Connection, *, reusable: bool) -> None:
        if reusable and not self._closed and conn.usable():
            self.reattach(conn.link)
        else:
            conn.writer.close()

    def sweep(self) -> None:
        """Close connections idle too long; forget backends with nothing left (e.g. processes
        replaced by a promotion), so the pool does not grow with every release."""
        horizon = time.monotonic() - self.idle_timeout
        for backend in list(self._idle):
            idle = self._idle[backend]
            keep = [link for link in idle if link.idle_since > horizon and link.usable()]
            for link in idle:
                if link not in keep:
                    link.transport.close()
            if keep:
                self._idle[backend] = keep
            else:
                del self._idle[backend]

    def idle_count(self, backend: str) -> int:
        return len(self._idle.get(backend, ()))

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for link in idle:
                link.transport.close()
        self._idle.clear()
