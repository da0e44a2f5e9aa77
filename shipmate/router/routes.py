"""How the runtime changes routing: an async interface, in-process or remote."""

from __future__ import annotations

from typing import Protocol

from shipmate.router.table import RouteTable


class Routes(Protocol):
    async def declare(self, app: str, service: str) -> None:
        """Make the route known, even with no backend yet (the router answers 503, not 404)."""

    async def add_backend(self, app: str, service: str, backend: str) -> None: ...

    async def remove_backend(self, app: str, service: str, backend: str) -> None: ...

    async def remove_app(self, app: str) -> None: ...

    async def backends(self, app: str, service: str) -> list[str]: ...

    async def wait_drained(self, backend: str, timeout: float) -> bool:
        """True once no request is in flight on `backend` (call after removing it)."""


class InProcessRoutes:
    """Routes of a router running in this process."""

    def __init__(self, table: RouteTable) -> None:
        self.table = table

    async def declare(self, app: str, service: str) -> None:
        if not self.table.known(app, service):
            self.table.set_backends(app, service, ())

    async def add_backend(self, app: str, service: str, backend: str) -> None:
        self.table.add_backend(app, service, backend)

    async def remove_backend(self, app: str, service: str, backend: str) -> None:
        self.table.remove_backend(app, service, backend)

    async def remove_app(self, app: str) -> None:
        self.table.remove_app(app)

    async def backends(self, app: str, service: str) -> list[str]:
        return self.table.backends(app, service)

    async def wait_drained(self, backend: str, timeout: float) -> bool:
        return await self.table.wait_drained(backend, timeout)
