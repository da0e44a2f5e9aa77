"""The console on the rack's API app: its pages under /console/, its assets from the package.

Mounted by the rack (shipmate/rack.py), not by create_api: the API stays the same document
and the same routes with or without the console.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

from shipmate.web import actions, pages, streams
from shipmate.web.render import HERE, PREFIX
from shipmate.web.sessions import Sessions


def install(api: FastAPI) -> None:
    api.state.console_sessions = Sessions()
    for module in (pages, actions, streams):
        api.include_router(module.router, prefix=PREFIX)
    api.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")

    # A browser pointed at the rack's address lands on the console.
    @api.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)
