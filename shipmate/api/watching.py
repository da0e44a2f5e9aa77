"""Canaries and watches: POST /apps/{app}/canary (continue or abort the app's canary) and
GET /apps/{app}/watch (the watch of its latest promotion, as it goes)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from shipmate.api.auth import require_token
from shipmate.api.deps import AppDep, Ctx, refuse_while_stopping
from shipmate.api.errors import ERROR_RESPONSES
from shipmate.api.schemas import PromotionOut
from shipmate.domain.errors import NotFound
from shipmate.services import canary, releases, watch

router = APIRouter(dependencies=[Depends(require_token)], responses=ERROR_RESPONSES)


class CanaryIn(BaseModel):
    action: Literal["continue", "abort"]


class CanaryOut(BaseModel):
    promotion: PromotionOut
    after: int = Field(description="its last event before the decision: follow it from there")


class WatchOut(BaseModel):
    release: str
    previous_release: str | None
    promotion: str
    canary: bool
    duration: int
    elapsed: float
    requests: int
    errors_percent: float
    p95_ms: int | None
    outcome: str = Field(
        description="watching, passed, failed, excused, too little traffic, stopped"
    )
    reason: str


@router.post("/apps/{app}/canary", response_model=CanaryOut, tags=["releases"])
async def decide(app: AppDep, body: CanaryIn, request: Request, ctx: Ctx) -> CanaryOut:
    if body.action == "continue":
        refuse_while_stopping(request, "promotion")
    promotion, after = canary.decide(ctx, app.name, body.action)
    await canary.left_canary(ctx, app.name, promotion.id)
    return CanaryOut(
        promotion=PromotionOut.of(releases.get_promotion(ctx, app.name, promotion.id)),
        after=after,
    )


@router.get("/apps/{app}/watch", response_model=WatchOut, tags=["releases"])
async def current_watch(app: AppDep, ctx: Ctx) -> WatchOut:
    found = watch.current(ctx, app.name)
    if found is None:
        raise NotFound(
            f"app {app.name} has no watch: the manifest's `deployment.watch` starts one "
            "with each promotion"
        )
    counts = found.new
    return WatchOut(
        release=found.release_id,
        previous_release=found.previous_id,
        promotion=found.promotion_id,
        canary=found.canary,
        duration=found.rule.duration,
        elapsed=round(min(found.elapsed, float(found.rule.duration)), 1),
        requests=counts.requests,
        errors_percent=round(counts.error_percent(), 2),
        p95_ms=counts.p95_ms(),
        outcome=str(found.verdict.outcome),
        reason=found.verdict.reason,
    )
