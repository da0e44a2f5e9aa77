"""Release history: GET /apps/{app}/releases/{release_id}/diff, what moving between two
releases changes, and GET /apps/{app}/promotions, every promotion newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from shipmate.api.auth import current_role, require_token
from shipmate.api.deps import AppDep, Ctx
from shipmate.api.errors import ERROR_RESPONSES, ApiError
from shipmate.api.schemas import PromotionOut
from shipmate.services import history

router = APIRouter(dependencies=[Depends(require_token)], responses=ERROR_RESPONSES)


class SideOut(BaseModel):
    release: str
    active: bool
    description: str
    build: str | None
    build_description: str | None
    commit: str | None = Field(description="the git commit its build's description names")


class ReleaseCommandOut(BaseModel):
    promotion: str
    release: str
    command: str
    state: str


class EnvDiffOut(BaseModel):
    added: dict[str, str]
    changed: dict[str, tuple[str, str]] = Field(description="key: [from, to]")
    removed: dict[str, str]


class ReleaseDiffOut(BaseModel):
    from_: SideOut = Field(alias="from")
    to: SideOut
    env: EnvDiffOut = Field(description="values are `****` unless `reveal`")
    manifest: str = Field(description="unified diff of the manifests, empty when the same")
    release_commands: list[ReleaseCommandOut] = Field(
        description="release commands run by the releases after the older, up to the newer"
    )

    model_config = {"populate_by_name": True}


def _side(side: history.Side) -> SideOut:
    return SideOut(
        release=side.release.id,
        active=side.active,
        description=side.release.description,
        build=side.release.build_id,
        build_description=side.build.description if side.build is not None else None,
        commit=side.commit,
    )


@router.get(
    "/apps/{app}/releases/{release_id}/diff",
    response_model=ReleaseDiffOut,
    response_model_by_alias=True,
    tags=["releases"],
)
async def release_diff(
    app: AppDep,
    release_id: str,
    ctx: Ctx,
    to: Annotated[str | None, Query(description="the other release (default: active)")] = None,
    reveal: Annotated[bool, Query(description="show values (not for viewers)")] = False,
) -> ReleaseDiffOut:
    if reveal and current_role.get() == "viewer":
        raise ApiError(
            403, "forbidden: a viewer sees which keys changed, not their values: drop --reveal"
        )
    found = history.diff(ctx, app.name, release_id, to, reveal=reveal)
    commands = [
        ReleaseCommandOut(
            promotion=p.id, release=p.release_id, command=p.release_command or "", state=p.state
        )
        for p in found.release_commands
    ]
    env = EnvDiffOut(added=found.env.added, changed=found.env.changed, removed=found.env.removed)
    # By alias: `from` is a keyword in Python.
    return ReleaseDiffOut.model_validate(
        {
            "from": _side(found.old),
            "to": _side(found.new),
            "env": env,
            "manifest": found.manifest,
            "release_commands": commands,
        }
    )


class HistoryOut(PromotionOut):
    action: str = Field(description="deploy, env, promote, rollback, scale or restart")
    description: str = Field(description="of the release it promoted")
    outcome: str = Field(description="succeeded, reverted, failed or in progress")


@router.get("/apps/{app}/promotions", response_model=list[HistoryOut], tags=["releases"])
async def promotion_history(
    app: AppDep, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> list[HistoryOut]:
    return [
        HistoryOut(
            **PromotionOut.of(e.promotion).model_dump(),
            action=e.action,
            description=e.description,
            outcome=e.outcome,
        )
        for e in history.promotions(ctx, app.name, limit)
    ]
