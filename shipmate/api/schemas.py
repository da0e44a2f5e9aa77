"""JSON shapes of the API (and of the CLI's --json output)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from shipmate.api.auth import visible_env
from shipmate.domain.humanize import rfc3339
from shipmate.runtimes.base import ProcessInfo
from shipmate.structs import App, Build, Event, Promotion, Release


class RackOut(BaseModel):
    name: str
    provider: str
    router: str
    status: str
    version: str
    # "" when each app runs as a user of its own; else why apps are not kept apart.
    isolation: str = ""


class AppCreate(BaseModel):
    name: str


class AppOut(BaseModel):
    name: str
    status: str
    release: str | None
    created: datetime
    router: dict[str, str] = Field(default_factory=dict)
    # "NAME (service)" of each custom domain, on `apps info` only.
    domains: list[str] = Field(default_factory=list)

    @classmethod
    def of(
        cls, app: App, router: dict[str, str] | None = None, domains: list[str] | None = None
    ) -> AppOut:
        return cls(
            name=app.name,
            status=app.status,
            release=app.release_id,
            created=app.created_at,
            router=router or {},
            domains=domains or [],
        )


class BuildOut(BaseModel):
    id: str
    app: str
    status: str
    description: str
    release: str | None
    error: str | None
    created: datetime
    started: datetime | None
    ended: datetime | None
    manifest: str | None

    @classmethod
    def of(cls, build: Build) -> BuildOut:
        return cls(
            id=build.id,
            app=build.app,
            status=build.status,
            description=build.description,
            release=build.release_id,
            error=build.error,
            created=build.created_at,
            started=build.started_at,
            ended=build.ended_at,
            manifest=build.manifest,
        )


class PromotionOut(BaseModel):
    id: str
    app: str
    release: str
    previous_release: str | None
    kind: str
    state: str
    history: list[str]
    reason: str | None
    created: datetime
    finished: datetime | None
    succeeded: bool
    created_by: str = ""

    @classmethod
    def of(cls, p: Promotion) -> PromotionOut:
        return cls(
            id=p.id,
            app=p.app,
            release=p.release_id,
            previous_release=p.previous_release_id,
            kind=p.kind,
            state=p.state,
            history=[str(s) for s in p.history],
            reason=p.reason,
            created=p.created_at,
            finished=p.finished_at,
            succeeded=p.finished_at is not None and p.state == "Running",
            created_by=p.created_by,
        )


class ReleaseOut(BaseModel):
    id: str
    app: str
    number: int
    build: str | None
    env: dict[str, str]
    description: str
    copied_from: str | None
    created: datetime
    active: bool
    promotions: list[PromotionOut] = Field(default_factory=list)
    created_by: str = ""
    status: str = Field(
        default="",
        description="`active`, `reverted` (its last promotion was reverted), or empty",
    )
    pinned: bool = Field(default=False, description="its build is never pruned")

    _mask = field_validator("env")(visible_env)

    @classmethod
    def of(
        cls,
        r: Release,
        active: bool,
        promotions: list[Promotion] | None = None,
        status: str | None = None,
    ) -> ReleaseOut:
        return cls(
            id=r.id,
            app=r.app,
            number=r.number,
            build=r.build_id,
            env=r.env,
            description=r.description,
            copied_from=r.copied_from,
            created=r.created_at,
            active=active,
            promotions=[PromotionOut.of(p) for p in promotions or []],
            created_by=r.created_by,
            status=status if status is not None else ("active" if active else ""),
            pinned=r.pinned,
        )


_NOTE = "set when the latest release, which changes fork from, is not the active one"


class EnvOut(BaseModel):
    env: dict[str, str]
    note: str | None = Field(default=None, description=_NOTE)

    # Every response that carries environment values is built from ReleaseOut, EnvOut or
    # EnvChangeOut: masking here covers them all, including routes added later.
    _mask = field_validator("env")(visible_env)


class EnvChangeIn(BaseModel):
    set: list[str] = Field(default_factory=list, description="KEY=value assignments")
    unset: list[str] = Field(default_factory=list)
    replace: bool = False
    release: str | None = Field(
        default=None, description="the release to change (default: the latest)"
    )


class ReleaseCreateIn(BaseModel):
    build_from: str | None = Field(default=None, description="its build (default: latest)")
    env_from: str | None = Field(default=None, description="its environment (default: latest)")


class EnvChangeOut(BaseModel):
    env: dict[str, str]

    _mask = field_validator("env")(visible_env)
    release: ReleaseOut | None
    note: str | None = Field(default=None, description=_NOTE)


class PromoteIn(BaseModel):
    wait: float | None = Field(default=None, gt=0, description="deadline in seconds")
    wait_for_lock: bool = Field(
        default=False,
        description="while another promotion of the app runs, wait for it to finish and then "
        "start, instead of answering 409",
    )
    canary: int | None = Field(
        default=None,
        ge=1,
        le=99,
        description="first send this % of requests to the release beside the active one, "
        "until POST /apps/{app}/canary continues or aborts it",
    )
    watch: bool = Field(default=True, description="false: skip the manifest's deployment.watch")


class StartedOut(BaseModel):
    release: ReleaseOut
    promotion: PromotionOut
    warnings: list[str] = Field(default_factory=list)


class EventOut(BaseModel):
    id: int
    time: str
    source: str
    message: str
    promotion: str | None
    line: str

    @classmethod
    def of(cls, e: Event) -> EventOut:
        time = rfc3339(e.created_at)
        return cls(
            id=e.id,
            time=time,
            source=e.source,
            message=e.message,
            promotion=e.promotion_id,
            line=f"{time} {e.source} {e.message}",
        )


class ProcessOut(BaseModel):
    id: str
    service: str
    status: str
    release: str
    started: datetime
    command: str
    pid: int | None
    port: int | None
    memory: int | None = None  # bytes in use

    @classmethod
    def of(cls, p: ProcessInfo) -> ProcessOut:
        return cls(
            id=p.id,
            service=p.service,
            status=p.status,
            release=p.release_id,
            started=p.started_at,
            command=p.command,
            pid=p.pid,
            port=p.port,
            memory=p.memory,
        )


class ScaleOut(BaseModel):
    service: str
    desired: int
    running: int


class ScaleIn(BaseModel):
    service: str
    count: int = Field(ge=0, le=100)
    wait: float | None = Field(default=None, gt=0, description="deadline in seconds")


class RestartIn(BaseModel):
    service: str | None = None
    wait: float | None = Field(default=None, gt=0, description="deadline in seconds")


class RunIn(BaseModel):
    service: str
    command: str = Field(min_length=1)
    release: str | None = None
