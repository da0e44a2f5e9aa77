"""Custom domains of an app and the rack's certificates (services/domains.py)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from shipmate.api.auth import require_token
from shipmate.api.deps import AppDep, Ctx
from shipmate.api.errors import ERROR_RESPONSES
from shipmate.services import domains

router = APIRouter(dependencies=[Depends(require_token)], responses=ERROR_RESPONSES)


class DomainIn(BaseModel):
    name: str
    service: str | None = Field(default=None, description="default: the app's routed service")


class DomainOut(BaseModel):
    name: str
    service: str
    source: str = Field(description="manual (domains add) or manifest (the active release's)")


class CertIn(BaseModel):
    name: str
    cert: str = Field(description="PEM, the certificate first, then its chain")
    key: str = Field(description="PEM private key, unencrypted")


class CertOut(BaseModel):
    domain: str
    issuer: str
    expires: datetime
    status: str = Field(description="valid, renewing (due within 30 days) or expired")
    source: str


@router.get("/apps/{app}/domains", response_model=list[DomainOut], tags=["domains"])
async def list_domains(app: AppDep, ctx: Ctx) -> list[DomainOut]:
    return [
        DomainOut(name=c.name, service=c.service, source=c.source)
        for c in domains.list_domains(ctx, app.name)
    ]


@router.post("/apps/{app}/domains", response_model=DomainOut, status_code=201, tags=["domains"])
async def add_domain(app: AppDep, body: DomainIn, ctx: Ctx) -> DomainOut:
    claim = await domains.add_domain(ctx, app.name, body.name, body.service)
    return DomainOut(name=claim.name, service=claim.service, source=claim.source)


@router.delete("/apps/{app}/domains/{name}", status_code=204, tags=["domains"])
async def remove_domain(app: AppDep, name: str, ctx: Ctx) -> Response:
    await domains.remove_domain(ctx, app.name, name)
    return Response(status_code=204)


def _cert(row: domains.CertRow) -> CertOut:
    return CertOut(
        domain=row.domain,
        issuer=row.issuer,
        expires=row.expires,
        status=row.status,
        source=row.source,
    )


@router.get("/certs", response_model=list[CertOut], tags=["domains"])
async def list_certs(ctx: Ctx) -> list[CertOut]:
    return [_cert(row) for row in domains.list_certs(ctx)]


@router.post("/certs", response_model=CertOut, status_code=201, tags=["domains"])
async def import_cert(body: CertIn, ctx: Ctx) -> CertOut:
    return _cert(await domains.import_cert(ctx, body.name, body.cert, body.key))
