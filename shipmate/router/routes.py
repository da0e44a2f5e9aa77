"""How the runtime changes routing: an async interface, implemented by `RemoteRoutes`
(remote.py) over the router daemon's admin socket."""

from __future__ import annotations

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
