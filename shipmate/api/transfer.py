"""Builds moved between racks: GET .../builds/{id}/export, POST .../builds/import."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from shipmate.api.auth import require_token
from shipmate.api.errors import ERROR_RESPONSES
from shipmate.api.schemas import BuildOut
from shipmate.domain.errors import RackStopping
from shipmate.domain.ids import validate_app_name
from shipmate.services import builds, transfer
from shipmate.services.context import Context

router = APIRouter(dependencies=[Depends(require_token)], responses=ERROR_RESPONSES)

_GZIP = {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}


class ImportedOut(BaseModel):
    build: BuildOut
    release: str
    origin: str


def _ctx(request: Request, app: str) -> Context:
    validate_app_name(app)
    ctx: Context = request.app.state.ctx
    return ctx


@router.get(
    "/apps/{app}/builds/{build_id}/export",
    response_class=FileResponse,
    responses={200: {"content": _GZIP}},
    tags=["builds"],
)
async def export_build(app: str, build_id: str, request: Request) -> FileResponse:
    # The app's code: for deployers (auth.DEPLOYER_READS), not viewers.
    path = transfer.export(_ctx(request, app), app, build_id)
    return FileResponse(
        path,
        media_type="application/gzip",
        filename=f"{app}-{build_id}.tgz",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.post(
    "/apps/{app}/builds/import",
    response_model=ImportedOut,
    status_code=201,
    openapi_extra={"requestBody": {"required": True, "content": _GZIP}},
    tags=["builds"],
)
async def import_build(app: str, request: Request) -> ImportedOut:
    ctx = _ctx(request, app)
    if request.app.state.stopping:
        raise RackStopping("build import")
    upload = await builds.receive_upload(ctx, app, request.stream())
    done = transfer.import_build(ctx, app, upload)
    return ImportedOut(build=BuildOut.of(done.build), release=done.release.id, origin=done.origin)
