"""GET /apps/{app}/deploy-debug: the processes of the app's latest promotion, judged.

A read (the `viewer` role, as `logs`): it shows what the processes printed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from shipmate.api.auth import require_token
from shipmate.api.deps import AppDep, Ctx
from shipmate.api.errors import ERROR_RESPONSES
from shipmate.api.schemas import PromotionOut
from shipmate.domain.humanize import rfc3339
from shipmate.services import diagnosis
from shipmate.structs import Event

router = APIRouter(dependencies=[Depends(require_token)], responses=ERROR_RESPONSES)


class OutputLineOut(BaseModel):
    time: datetime
    text: str


class CrashOut(BaseModel):
    process: str
    exit_code: int | None
    oom_killed: bool
    output: list[OutputLineOut]


class ProcessReportOut(BaseModel):
    id: str
    service: str
    release: str
    state: str = Field(
        description="healthy, starting, unhealthy, crash-looping, oom-killed, exited, stopped"
    )
    status: str = Field(description="what the runtime says: starting, running, stopping, exited")
    started: datetime
    healthy_at: datetime | None = Field(description="when it first passed its health check")
    exited: datetime | None
    port: int | None
    command: str
    health_problem: str | None = Field(description="the last failed health check")
    exit_code: int | None
    exit_codes: list[int] = Field(description="of its service's crashes in a row, oldest first")
    stopped: bool = Field(description="the platform stopped it (it did not exit on its own)")
    oom_killed: bool
    memory_limit: int | None = Field(description="MB")
    output: list[OutputLineOut] = Field(description="what it printed before it was ever healthy")
    previous_crash: CrashOut | None
    hint: str | None


class EventOut(BaseModel):
    time: datetime
    source: str
    message: str
    line: str


class DiagnosisOut(BaseModel):
    app: str
    release: str | None = Field(description="the release the latest promotion promoted")
    promotion: PromotionOut | None
    processes: list[ProcessReportOut]
    hidden: int = Field(description="processes in a fine state left out (without `all`)")
    latest_release: str | None = Field(description="the app's latest release")
    missing_env: list[str] = Field(
        description="required keys (of its manifest) the latest release's environment lacks"
    )
    events: list[EventOut]


def _lines(lines: tuple[diagnosis.OutputLine, ...]) -> list[OutputLineOut]:
    return [OutputLineOut(time=line.time, text=line.text) for line in lines]


def _report(r: diagnosis.ProcessReport) -> ProcessReportOut:
    p = r.process
    crash = r.previous_crash
    return ProcessReportOut(
        id=p.id,
        service=p.service,
        release=p.release_id,
        state=r.state,
        status=p.status,
        started=p.started_at,
        healthy_at=p.healthy_at,
        exited=p.exited_at,
        port=p.port,
        command=p.command,
        health_problem=p.health_problem,
        exit_code=p.exit_code,
        exit_codes=list(r.exit_codes),
        stopped=p.stopped,
        oom_killed=p.oom_killed,
        memory_limit=p.memory_limit,
        output=_lines(r.output),
        previous_crash=None
        if crash is None
        else CrashOut(
            process=crash.process_id,
            exit_code=crash.exit_code,
            oom_killed=crash.oom_killed,
            output=_lines(crash.output),
        ),
        hint=r.hint,
    )


def _event(e: Event) -> EventOut:
    return EventOut(
        time=e.created_at,
        source=e.source,
        message=e.message,
        line=f"{rfc3339(e.created_at)} {e.source} {e.message}",
    )


@router.get("/apps/{app}/deploy-debug", response_model=DiagnosisOut, tags=["processes"])
async def deploy_debug(
    app: AppDep,
    ctx: Ctx,
    service: Annotated[str | None, Query(description="only this service")] = None,
    lines: Annotated[int, Query(ge=0, le=1000, description="output lines per process")] = 20,
    all: Annotated[bool, Query(description="healthy processes too")] = False,
    events: Annotated[bool, Query(description="the promotion's events")] = True,
) -> DiagnosisOut:
    found = await diagnosis.diagnose(
        ctx, app.name, service=service, lines=lines, everything=all, events=events
    )
    return DiagnosisOut(
        app=found.app,
        release=found.release_id,
        promotion=PromotionOut.of(found.promotion) if found.promotion else None,
        processes=[_report(r) for r in found.processes],
        hidden=found.hidden,
        latest_release=found.latest_release_id,
        missing_env=list(found.missing_env),
        events=[_event(e) for e in found.events],
    )
