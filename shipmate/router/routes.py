"""How the runtime changes routing: an async interface, implemented by `RemoteRoutes`
(remote.py) over the router daemon's admin socket."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Routes(Protocol):
    async def declare(self, app: str, service: str) -> None:
        """Make the route known, even with no backend yet (the router answers 503, not 404)."""

    async def add_backend(self, app: str, service: str, backend: str) -> None: ...

    async def remove_backend(self, app: str, service: str, backend: str) -> None: ...

    async def remove_app(self, app: str) -> None: ...

    async def backends(self, app: str, service: str) -> list[str]: ...

    async def wait_drained(self, backend: str, timeout: float) -> bool:
        """True once no request is in flight on `backend` (call after removing it)."""

    async def set_canary(
        self, app: str, service: str, backends: Sequence[str], percent: int
    ) -> None:
        """Send `percent`% (1..99) of the route's requests to `backends`, a group beside its
        ordinary backends (none of which may be in it); the route must be declared."""

    async def end_canary(self, app: str, service: str, keep: bool) -> None:
        """Drop the canary group; `keep`: its backends join the ordinary ones first."""

    async def counters(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
        """{backend: (responses per class 1xx..5xx, per latency bucket)}, cumulative since
        the router started; the buckets' upper bounds are common.latency.LATENCY_BOUNDS_MS
        (in ms), then one for anything slower."""
