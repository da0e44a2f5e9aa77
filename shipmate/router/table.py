"""The routing table: which processes serve each (app, service), and what is in flight on each.

The runtime writes it (from its own thread or event loop) and the router reads it on every
request, so every operation is a short critical section under one lock. Backend lists are
immutable tuples replaced wholesale, so a switch is a single pointer swap (as in kamal-proxy):
a request sees either the old list or the new one, never a mix.

A route may also have a canary group: backends that get a fixed percentage of its requests,
chosen by an accumulator (add the percentage on every request, take the canary when it
reaches 100) so that 10% is exactly every tenth request. A backend is in at most one group.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from shipmate.router.sites import Sites

Key = tuple[str, str]
Routes = dict[str, dict[str, list[str]]]
# {app: {service: {"backends": [...], "percent": n}}}, the canary groups as JSON carries them.
Canaries = dict[str, dict[str, dict[str, Any]]]
_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


def _check_backend(backend: str) -> str:
    # Reject a malformed address here, where the runtime can see the error, rather than as a
    # 502 on every request later.
    host, sep, port = backend.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"backend must be HOST:PORT, got {backend!r}")
    return backend


def _check_percent(percent: int) -> int:
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 < percent < 100:
        raise ValueError(f"percent must be an integer between 1 and 99, got {percent!r}")
    return percent


def _unique(backends: Sequence[str]) -> tuple[str, ...]:
    # dict.fromkeys de-duplicates while keeping the runtime's order.
    return tuple(dict.fromkeys(_check_backend(b) for b in backends))


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
    the key, `remove_app` drops it. The canary group of a key (`set_canary`) sits beside its
    ordinary backends, which every other write is about; `remove_backend` removes from both.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[Key, tuple[str, ...]] = {}
        self._cursor: dict[Key, int] = {}
        # key -> (canary backends, percent); its own round-robin cursor and weight accumulator.
        self._canaries: dict[Key, tuple[tuple[str, ...], int]] = {}
        self._canary_cursor: dict[Key, int] = {}
        self._weight: dict[Key, int] = {}
        self._inflight: dict[str, int] = {}
        self._waiters: dict[str, list[_Waiter]] = {}
        # Custom domains, redirects and ACME answers (sites.py): immutable, swapped whole, so
        # the router reads it without the lock.
        self.sites = Sites()

    # --- writes (runtime) ---------------------------------------------------------------

    def set_backends(self, app: str, service: str, backends: Sequence[str]) -> None:
        new = _unique(backends)
        key = (app, service)
        with self._lock:
            self._routes[key] = new
            self._leave_canary(key, new)

    def load(
        self, routes: Routes, canaries: Canaries | None = None, sites: Sites | None = None
    ) -> None:
        """Replace every route at once (a `snapshot()` and the `canaries()` of another table),
        and the sites when given."""
        new = {
            (app, service): _unique(backends)
            for app, services in routes.items()
            for service, backends in services.items()
        }
        groups = {
            (app, service): (_unique(group["backends"]), _check_percent(group["percent"]))
            for app, services in (canaries or {}).items()
            for service, group in services.items()
            if (app, service) in new
        }
        with self._lock:
            self._routes = new
            self._canaries = groups
            self._cursor = {k: v for k, v in self._cursor.items() if k in new}
            self._canary_cursor = {k: v for k, v in self._canary_cursor.items() if k in groups}
            self._weight = {k: v for k, v in self._weight.items() if k in groups}
            if sites is not None:
                self.sites = sites

    def add_backend(self, app: str, service: str, backend: str) -> None:
        _check_backend(backend)
        key = (app, service)
        with self._lock:
            current = self._routes.get(key, ())
            if backend not in current:
                self._routes[key] = (*current, backend)
                self._leave_canary(key, (backend,))

    def remove_backend(self, app: str, service: str, backend: str) -> None:
        key = (app, service)
        with self._lock:
            current = self._routes.get(key)
            if current is not None and backend in current:
                self._routes[key] = tuple(b for b in current if b != backend)
            self._leave_canary(key, (backend,))

    def remove_app(self, app: str) -> None:
        with self._lock:
            for key in [k for k in self._routes if k[0] == app]:
                del self._routes[key]
                self._cursor.pop(key, None)
                self._drop_canary(key)

    def set_canary(self, app: str, service: str, backends: Sequence[str], percent: int) -> None:
        """Send `percent`% of the route's requests to `backends` (replacing any canary group
        it had). KeyError when the route is not declared; ValueError when a backend is
        malformed or already one of its ordinary backends."""
        group = _unique(backends)
        _check_percent(percent)
        key = (app, service)
        with self._lock:
            current = self._routes.get(key)
            if current is None:
                raise KeyError(f"no route for service {service} of app {app}")
            both = [b for b in group if b in current]
            if both:
                raise ValueError(f"{both[0]} is already an ordinary backend of {service}.{app}")
            if key not in self._canaries:
                self._weight[key] = 0
            self._canaries[key] = (group, percent)

    def end_canary(self, app: str, service: str, keep: bool) -> None:
        """Drop the canary group; with `keep`, its backends first join the ordinary ones
        (appended, in the same swap). Requests in flight on a dropped one finish as usual
        (`wait_drained`). Nothing to do when there is no canary group."""
        key = (app, service)
        with self._lock:
            found = self._canaries.get(key)
            if found is None:
                return
            current = self._routes.get(key, ())
            if keep:
                self._routes[key] = current + tuple(b for b in found[0] if b not in current)
            self._drop_canary(key)

    def _leave_canary(self, key: Key, backends: Sequence[str]) -> None:
        # Under the lock: `backends` became ordinary (or were removed), so out of the canary.
        found = self._canaries.get(key)
        if found is not None and any(b in found[0] for b in backends):
            self._canaries[key] = (tuple(b for b in found[0] if b not in backends), found[1])

    def _drop_canary(self, key: Key) -> None:
        self._canaries.pop(key, None)
        self._canary_cursor.pop(key, None)
        self._weight.pop(key, None)

    # --- reads (router) -----------------------------------------------------------------

    def backends(self, app: str, service: str) -> list[str]:
        with self._lock:
            return list(self._routes.get((app, service), ()))

    def known(self, app: str, service: str) -> bool:
        """True once the runtime declared the route, even with no backend yet."""
        with self._lock:
            return (app, service) in self._routes

    def has_backend(self, app: str, service: str, backend: str) -> bool:
        """True while `backend` is in the route, ordinary or canary."""
        key = (app, service)
        with self._lock:
            if backend in self._routes.get(key, ()):
                return True
            found = self._canaries.get(key) if self._canaries else None
            return found is not None and backend in found[0]

    def canary(self, app: str, service: str) -> tuple[tuple[str, ...], int] | None:
        """(canary backends, percent), or None when the route has no canary group."""
        with self._lock:
            return self._canaries.get((app, service))

    def routed(self) -> set[str]:
        """Every backend in some route, ordinary or canary."""
        with self._lock:
            found = {b for backends in self._routes.values() for b in backends}
            return found.union(*(group for group, _ in self._canaries.values()))

    def candidates(self, app: str, service: str) -> tuple[str, ...] | None:
        """Every backend, starting at the next one in round-robin order (the rest are the
        fallbacks when it cannot be reached); None when the (app, service) is unknown.

        With a canary group, its percentage of the calls start at the next canary backend
        instead; the fallbacks are the rest of the chosen group, then the other group."""
        key = (app, service)
        with self._lock:
            current = self._routes.get(key)
            # One empty-dict test on the hot path while no route has a canary.
            if self._canaries and current is not None and key in self._canaries:
                return self._weighted(key, current)
            if current is None or len(current) < 2:
                return current
            start = self._cursor.get(key, 0) % len(current)
            self._cursor[key] = start + 1
        return current[start:] + current[:start]

    def _weighted(self, key: Key, current: tuple[str, ...]) -> tuple[str, ...]:
        # Under the lock.
        group, percent = self._canaries[key]
        if group and current:
            weight = self._weight.get(key, 0) + percent
            canary = weight >= 100
            self._weight[key] = weight - 100 if canary else weight
        else:
            canary = not current  # one group is empty: the other takes every request
        chosen: tuple[str, ...]
        if canary:
            chosen, other, cursors = group, current, self._canary_cursor
        else:
            chosen, other, cursors = current, group, self._cursor
        if not chosen:
            return ()
        start = cursors.get(key, 0) % len(chosen)
        cursors[key] = start + 1
        return chosen[start:] + chosen[:start] + other

    def pick(self, app: str, service: str) -> str | None:
        found = self.candidates(app, service)
        return found[0] if found else None

    def snapshot(self) -> Routes:
        """The ordinary backends of every route: {app: {service: [backend, ...]}}."""
        with self._lock:
            routes = list(self._routes.items())
        result: Routes = {}
        for (app, service), backends in sorted(routes):
            result.setdefault(app, {})[service] = list(backends)
        return result

    def canaries(self) -> Canaries:
        """The canary groups, beside `snapshot()`: {app: {service: {"backends", "percent"}}}."""
        with self._lock:
            groups = list(self._canaries.items())
        result: Canaries = {}
        for (app, service), (backends, percent) in sorted(groups):
            result.setdefault(app, {})[service] = {"backends": list(backends), "percent": percent}
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
