"""Kept-alive connections from the router to app processes, pooled per backend.

Opening a TCP connection per request would cost more than the proxying itself, so connections
are reused. A pooled connection can go stale (the process closed it when idle, or died), which
`usable()` catches in most cases; the proxy retries the rest on a fresh connection when that is
safe.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from shipmate.router.http1 import MAX_HEAD, describe


class ConnectError(Exception):
    """Could not open a connection to a backend; nothing was sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True, eq=False)
class Connection:
    backend: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False
    idle_since: float = 0.0

    def usable(self) -> bool:
        # at_eof() is True once the peer's FIN has been read and nothing is left unread.
        return not self.writer.transport.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class UpstreamPool:
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
        self._idle: dict[str, deque[Connection]] = {}
        self._closed = False

    async def acquire(self, backend: str, *, fresh: bool = False) -> Connection:
        if not fresh:
            idle = self._idle.get(backend)
            if idle:
                horizon = time.monotonic() - self.idle_timeout
                while idle:
                    conn = idle.pop()
                    if conn.idle_since > horizon and conn.usable():
                        conn.reused = True
                        return conn
                    conn.close()
        host, _, port = backend.rpartition(":")
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(host, int(port), limit=MAX_HEAD)
        except TimeoutError:
            raise ConnectError(f"connect timed out after {self.connect_timeout:g}s") from None
        except OSError as exc:
            raise ConnectError(describe(exc)) from None
        return Connection(backend, reader, writer)

    def release(self, conn: Connection, *, reusable: bool) -> None:
        if not reusable or self._closed or not conn.usable():
            conn.close()
            return
        conn.reused = False
        conn.idle_since = time.monotonic()
        idle = self._idle.get(conn.backend)
        if idle is None:
            idle = self._idle[conn.backend] = deque()
        idle.append(conn)
        if len(idle) > self.max_idle:
            idle.popleft().close()

    def sweep(self) -> None:
        """Close connections idle too long; forget backends with nothing left (e.g. processes
        replaced by a promotion), so the pool does not grow with every release."""
        horizon = time.monotonic() - self.idle_timeout
        for backend in list(self._idle):
            idle = self._idle[backend]
            while idle and (idle[0].idle_since <= horizon or not idle[0].usable()):
                idle.popleft().close()
            if not idle:
                del self._idle[backend]

    def idle_count(self, backend: str) -> int:
        return len(self._idle.get(backend, ()))

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
