"""Retention: an app's settings (`keep`), pins, and `builds prune`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from shipmate.api.auth import require_token
from shipmate.api.deps import AppDep, Ctx
from shipmate.api.errors import ERROR_RESPONSES
from shipmate.api.schemas import ReleaseOut
from shipmate.services import retention

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


@router.get("/apps/{app}/settings", response_model=SettingsOut, tags=["apps"])
async def get_settings(app: AppDep) -> SettingsOut:
    return SettingsOut(keep=app.keep)


@router.post("/apps/{app}/settings", response_model=SettingsOut, tags=["apps"])
async def change_settings(app: AppDep, body: SettingsIn, ctx: Ctx) -> SettingsOut:
    return SettingsOut(keep=retention.set_keep(ctx, app.name, body.keep).keep)


@router.post("/apps/{app}/releases/{release_id}/pin", response_model=ReleaseOut, tags=["releases"])
async def pin(app: AppDep, release_id: str, ctx: Ctx) -> ReleaseOut:
    release = retention.pin(ctx, app.name, release_id, True)
    return ReleaseOut.of(release, active=release.id == app.release_id)


@router.post(
    "/apps/{app}/releases/{release_id}/unpin", response_model=ReleaseOut, tags=["releases"]
)
async def unpin(app: AppDep, release_id: str, ctx: Ctx) -> ReleaseOut:
    release = retention.pin(ctx, app.name, release_id, False)
    return ReleaseOut.of(release, active=release.id == app.release_id)


@router.post("/apps/{app}/builds/prune", response_model=PruneOut, tags=["builds"])
async def prune(app: AppDep, ctx: Ctx, dry_run: Annotated[bool, Query()] = False) -> PruneOut:
    doomed = retention.prune(ctx, app.name, dry_run=dry_run)
    return PruneOut(
        dry_run=dry_run,
        keep=app.keep,
        builds=[
            PrunableOut(build=d.build_id, releases=list(d.releases), size=d.size) for d in doomed
        ],
        freed=sum(d.size for d in doomed),
    )
