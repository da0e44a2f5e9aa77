"""The routing table: which processes serve each (app, service), and what is in flight on each.

The runtime writes it (from its own thread or event loop) and the router reads it on every
request, so every operation is a short critical section under one lock. Backend lists are
immutable tuples replaced wholesale, so a switch is a single pointer swap (as in kamal-proxy):
a request sees either the old list or the new one, never a mix.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from types import TracebackType

Key = tuple[str, str]
_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


def _check_backend(backend: str) -> str:
    # Reject a malformed address here, where the runtime can see the error, rather than as a
    # 502 on every request later.
    host, sep, port = backend.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"backend must be HOST:PORT, got {backend!r}")
    return backend


class Tracker:
    """Counts one request as in flight on a backend; usable with `with` or `async with`."""

    __slots__ = ("_backend", "_table")

    def __init__(self, table: RouteTable, backend: str) -> None:
        self._table = table
        self._backend = backend

    def __enter__(self) -> Tracker:
        self._table._begin(self._backend)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._table._end(self._backend)

    async def __aenter__(self) -> Tracker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class RouteTable:
    """(app, service) -> ordered backends ("127.0.0.1:PORT"), with round robin and draining.

    A key that exists with no backends means "known but nothing healthy" (the router answers
    503); a key that does not exist means "no such app/service" (404). `remove_backend` keeps
    the key, `remove_app` drops it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[Key, tuple[str, ...]] = {}
        self._cursor: dict[Key, int] = {}
        self._inflight: dict[str, int] = {}
        self._waiters: dict[str, list[_Waiter]] = {}

    # --- writes (runtime) ---------------------------------------------------------------

    def set_backends(self, app: str, service: str, backends: Sequence[str]) -> None:
        # dict.fromkeys de-duplicates while keeping the runtime's order.
        new = tuple(dict.fromkeys(_check_backend(b) for b in backends))
        with self._lock:
            self._routes[(app, service)] = new

    def load(self, routes: dict[str, dict[str, list[str]]]) -> None:
        """Replace every route at once (a `snapshot()` of another table)."""
        new = {
            (app, service): tuple(dict.fromkeys(_check_backend(b) for b in backends))
            for app, services in routes.items()
            for service, backends in services.items()
        }
        with self._lock:
            self._routes = new
            self._cursor = {k: v for k, v in self._cursor.items() if k in new}

    def add_backend(self, app: str, service: str, backend: str) -> None:
        _check_backend(backend)
        with self._lock:
            current = self._routes.get((app, service), ())
            if backend not in current:
                self._routes[(app, service)] = (*current, backend)

    def remove_backend(self, app: str, service: str, backend: str) -> None:
        with self._lock:
            current = self._routes.get((app, service))
            if current is not None and backend in current:
                self._routes[(app, service)] = tuple(b for b in current if b != backend)

    def remove_app(self, app: str) -> None:
        with self._lock:
            for key in [k for k in self._routes if k[0] == app]:
                del self._routes[key]
                self._cursor.pop(key, None)

    # --- reads (router) -----------------------------------------------------------------

    def backends(self, app: str, service: str) -> list[str]:
        with self._lock:
            return list(self._routes.get((app, service), ()))

    def known(self, app: str, service: str) -> bool:
        """True once the runtime declared the route, even with no backend yet."""
        with self._lock:
            return (app, service) in self._routes

    def has_backend(self, app: str, service: str, backend: str) -> bool:
        with self._lock:
            return backend in self._routes.get((app, service), ())

    def candidates(self, app: str, service: str) -> tuple[str, ...] | None:
        """Every backend, starting at the next one in round-robin order (the rest are the
        fallbacks when it cannot be reached); None when the (app, service) is unknown."""
        key = (app, service)
        with self._lock:
            current = self._routes.get(key)
            if current is None or len(current) < 2:
                return current
            start = self._cursor.get(key, 0) % len(current)
            self._cursor[key] = start + 1
        return current[start:] + current[:start]

    def pick(self, app: str, service: str) -> str | None:
        found = self.candidates(app, service)
        return found[0] if found else None

    def snapshot(self) -> dict[str, dict[str, list[str]]]:
        with self._lock:
            routes = list(self._routes.items())
        result: dict[str, dict[str, list[str]]] = {}
        for (app, service), backends in sorted(routes):
            result.setdefault(app, {})[service] = list(backends)
        return result

    # --- in-flight tracking and draining -------------------------------------------------

    def track(self, backend: str) -> Tracker:
        return Tracker(self, backend)

    def inflight(self, backend: str) -> int:
        with self._lock:
            return self._inflight.get(backend, 0)

    def begin(self, backend: str) -> None:
        """Count one request in flight on `backend` until `end`; `track` for blocks."""
        self._begin(backend)

    def end(self, backend: str) -> None:
        self._end(backend)

    def _begin(self, backend: str) -> None:
        with self._lock:
            self._inflight[backend] = self._inflight.get(backend, 0) + 1

    def _end(self, backend: str) -> None:
        with self._lock:
            left = self._inflight[backend] - 1
            if left:
                self._inflight[backend] = left
                return
            del self._inflight[backend]
            waiters = self._waiters.pop(backend, None)
        if waiters:
            # Waiters may sit on another thread's event loop (the runtime's), so wake them
            # through their own loop rather than touching their futures from here.
            for loop, future in waiters:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_resolve, future)

    async def wait_drained(self, backend: str, timeout: float) -> bool:
        """Wait until no request is in flight on `backend`; False if `timeout` passes first.

        Call it after taking the backend out of every route, so that no new request can start.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = (loop, future)
        with self._lock:
            if not self._inflight.get(backend):
                return True
            self._waiters.setdefault(backend, []).append(waiter)
        try:
            async with asyncio.timeout(max(timeout, 0)):
                await future
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                pending = self._waiters.get(backend)
                if pending and waiter in pending:
                    pending.remove(waiter)
                    if not pending:
                        del self._waiters[backend]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
