"""Builds moved between racks: GET .../builds/{id}/export, POST .../builds/import."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from shipmate.api.auth import require_token
from shipmate.api.deps import AppDep, Ctx, refuse_while_stopping
from shipmate.api.errors import ERROR_RESPONSES
from shipmate.api.schemas import BuildOut
from shipmate.domain.errors import RackStopping
from shipmate.services import builds, transfer

router = APIRouter(dependencies=[Depends(require_token)], responses=ERROR_RESPONSES)

_GZIP = {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}


class ImportedOut(BaseModel):
    build: BuildOut
    release: str
    origin: str


@router.get(
    "/apps/{app}/builds/{build_id}/export",
    response_class=FileResponse,
    responses={200: {"content": _GZIP}},
    tags=["builds"],
)
async def export_build(app: AppDep, build_id: str, ctx: Ctx) -> FileResponse:
    # The app's code: for deployers (auth.DEPLOYER_READS), not viewers.
    path = transfer.export(ctx, app.name, build_id)
    return FileResponse(
        path,
        media_type="application/gzip",
        filename=f"{app.name}-{build_id}.tgz",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.post(
    "/apps/{app}/builds/import",
    response_model=ImportedOut,
    status_code=201,
    openapi_extra={"requestBody": {"required": True, "content": _GZIP}},
    tags=["builds"],
)
async def import_build(app: AppDep, request: Request, ctx: Ctx) -> ImportedOut:
    refuse_while_stopping(request, "build import")
    upload = await builds.receive_upload(ctx, app.name, request.stream())
    try:
        refuse_while_stopping(request, "build import")
    except RackStopping:
        upload.unlink(missing_ok=True)
        raise
    done = transfer.import_build(ctx, app.name, upload)
    return ImportedOut(build=BuildOut.of(done.build), release=done.release.id, origin=done.origin)
