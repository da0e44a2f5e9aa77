"""Routes and JSON shapes of tokens, key rotation and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from shipmate.api.auth import require_token
from shipmate.api.errors import ERROR_RESPONSES
from shipmate.domain.ids import validate_app_name
from shipmate.services import audit, keys, tokens
from shipmate.services.context import Context
from shipmate.structs import AuditEntry, Token

router = APIRouter(dependencies=[Depends(require_token)], responses=ERROR_RESPONSES)


def _context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(_context)]


class TokenOut(BaseModel):
    name: str
    role: str
    created: datetime
    created_by: str
    last_used: datetime | None
    revoked: datetime | None
    status: str

    @classmethod
    def of(cls, t: Token) -> TokenOut:
        return cls(
            name=t.name,
            role=t.role,
            created=t.created_at,
            created_by=t.created_by,
            last_used=t.last_used_at,
            revoked=t.revoked_at,
            status="revoked" if t.revoked_at else "active",
        )


class TokenCreate(BaseModel):
    name: str
    role: Literal["viewer", "deployer", "admin"]


class TokenCreated(TokenOut):
    token: str  # shown in this response only; the rack keeps its hash


class RotatedOut(BaseModel):
    reencrypted: int


class AuditOut(BaseModel):
    id: int
    time: datetime
    actor: str
    action: str
    app: str | None
    target: str
    detail: str

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        return cls(
            id=e.id,
            time=e.time,
            actor=e.actor,
            action=e.action,
            app=e.app,
            target=e.target,
            detail=e.detail,
        )


@router.get("/rack/tokens", response_model=list[TokenOut], tags=["rack"])
async def list_tokens(ctx: Ctx) -> list[TokenOut]:
    return [TokenOut.of(t) for t in tokens.list_tokens(ctx)]


@router.post("/rack/tokens", response_model=TokenCreated, status_code=201, tags=["rack"])
async def create_token(body: TokenCreate, ctx: Ctx) -> TokenCreated:
    token, secret = tokens.create(ctx, body.name, body.role)
    return TokenCreated(**TokenOut.of(token).model_dump(), token=secret)


@router.delete("/rack/tokens/{name}", status_code=204, tags=["rack"])
async def revoke_token(name: str, ctx: Ctx) -> Response:
    tokens.revoke(ctx, name)
    return Response(status_code=204)


@router.post("/rack/rotate-key", response_model=RotatedOut, tags=["rack"])
async def rotate_key(ctx: Ctx) -> RotatedOut:
    return RotatedOut(reencrypted=keys.rotate(ctx))


@router.get("/audit", response_model=list[AuditOut], tags=["audit"])
async def list_audit(
    ctx: Ctx,
    app: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
) -> list[AuditOut]:
    """The audit trail, newest first; `app` keeps the entries of one app."""
    if app is not None:
        validate_app_name(app)
    return [AuditOut.of(e) for e in audit.entries(ctx, app, limit)]
