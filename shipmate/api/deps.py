"""What the API's routes take as dependencies: the rack's context and an existing app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shipmate.domain.errors import RackStopping
from shipmate.domain.ids import validate_app_name
from shipmate.services import apps
from shipmate.services.context import Context
from shipmate.structs import App


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(context)]


def refuse_while_stopping(request: Request, what: str) -> None:
    """Refuse new work once the rack stops. Called right before the work is recorded, with
    no await in between: the rack's stop then waits for everything recorded before it."""
    if request.app.state.stopping:
        raise RackStopping(what)


def existing_app(app: str, ctx: Ctx) -> App:
    validate_app_name(app)
    return apps.get_app(ctx, app)


AppDep = Annotated[App, Depends(existing_app)]
