"""The FastAPI application of a rack."""

from __future__ import annotations

from fastapi import FastAPI

import shipmate
from shipmate.api import (
    attach,
    diagnosis,
    domains,
    errors,
    history,
    retention,
    security,
    transfer,
    watching,
)
from shipmate.api.routes import router
from shipmate.services import tokens
from shipmate.services.context import Context


def create_api(ctx: Context, token: str) -> FastAPI:
    api = FastAPI(
        title="shipmate",
        version=shipmate.__version__,
        description="Builds, immutable releases, rolling promotions and rollbacks.",
    )
    api.state.ctx = ctx
    # Set by the rack when it begins a graceful stop (shipmate/rack.py): new promotions and
    # builds are refused from then on, while the API goes on answering everything else.
    api.state.stopping = False
    # The token `rack start` wrote for the local CLI is the first admin token.
    tokens.ensure_owner(ctx, token)
    errors.install(api)
    api.include_router(router)
    api.include_router(security.router)
    api.include_router(attach.router)
    api.include_router(history.router)
    api.include_router(retention.router)
    api.include_router(domains.router)
    api.include_router(transfer.router)
    api.include_router(watching.router)
    api.include_router(diagnosis.router)

    @api.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return api
