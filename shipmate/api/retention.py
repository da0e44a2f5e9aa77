"""Retention: an app's settings (`keep`), pins, and `builds prune`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from shipmate.api.auth import require_token
from shipmate.api.errors import ERROR_RESPONSES
from shipmate.api.schemas import ReleaseOut
from shipmate.domain.ids import validate_app_name
from shipmate.services import apps, retention
from shipmate.services.context import Context

router = APIRouter(dependencies=[Depends(require_token)], responses=ERROR_RESPONSES)


class SettingsIn(BaseModel):
    keep: int | None = Field(description="releases whose builds are kept; null: every one")


class SettingsOut(BaseModel):
    keep: int | None


class PrunableOut(BaseModel):
    build: str
    releases: list[str]
    size: int = Field(description="bytes on disk")


class PruneOut(BaseModel):
    dry_run: bool
    keep: int | None
    builds: list[PrunableOut]
    freed: int = Field(description="bytes, the sum of the builds' sizes")


def _ctx(request: Request, app: str) -> Context:
    validate_app_name(app)
    ctx: Context = request.app.state.ctx
    return ctx


@router.get("/apps/{app}/settings", response_model=SettingsOut, tags=["apps"])
async def get_settings(app: str, request: Request) -> SettingsOut:
    return SettingsOut(keep=apps.get_app(_ctx(request, app), app).keep)


@router.post("/apps/{app}/settings", response_model=SettingsOut, tags=["apps"])
async def change_settings(app: str, body: SettingsIn, request: Request) -> SettingsOut:
    return SettingsOut(keep=retention.set_keep(_ctx(request, app), app, body.keep).keep)


@router.post("/apps/{app}/releases/{release_id}/pin", response_model=ReleaseOut, tags=["releases"])
async def pin(app: str, release_id: str, request: Request) -> ReleaseOut:
    release = retention.pin(_ctx(request, app), app, release_id, True)
    return ReleaseOut.of(release, active=False)


@router.post(
    "/apps/{app}/releases/{release_id}/unpin", response_model=ReleaseOut, tags=["releases"]
)
async def unpin(app: str, release_id: str, request: Request) -> ReleaseOut:
    release = retention.pin(_ctx(request, app), app, release_id, False)
    return ReleaseOut.of(release, active=False)


@router.post("/apps/{app}/builds/prune", response_model=PruneOut, tags=["builds"])
async def prune(app: str, request: Request, dry_run: Annotated[bool, Query()] = False) -> PruneOut:
    ctx = _ctx(request, app)
    doomed = retention.prune(ctx, app, dry_run=dry_run)
    return PruneOut(
        dry_run=dry_run,
        keep=apps.get_app(ctx, app).keep,
        builds=[
            PrunableOut(build=d.build_id, releases=list(d.releases), size=d.size) for d in doomed
        ],
        freed=sum(d.size for d in doomed),
    )
