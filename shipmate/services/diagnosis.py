"""`deploy-debug`: why the processes of an app's latest promotion are not healthy.

The runtime says what it knows of each process (running or recently exited: a failed
promotion's are stopped by its revert); the domain judges each one and words a hint; this
reads what each printed before it was ever healthy, and the promotion's events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shipmate.domain import diagnosis
from shipmate.domain.diagnosis import FINE, Chain, ProcessState
from shipmate.domain.errors import ShipmateError
from shipmate.domain.humanize import utcnow
from shipmate.runtimes.base import ProcessDiagnosis
from shipmate.services.context import Context
from shipmate.services.promotions import manifest_of
from shipmate.structs import Event, Promotion, Release

# How much of an output file is read for its last lines, or for its first (start-up) ones.
TAIL_BYTES = 65536
HEAD_BYTES = 262144
# Events of a promotion at most reported (the last ones), of the app's since it began read.
MAX_EVENTS = 500
EVENTS_READ = 5000


@dataclass(frozen=True)
class OutputLine:
    time: datetime
    text: str


@dataclass(frozen=True)
class Crash:
    """The previous crash of a process's service: the process it replaced."""

    process_id: str
    exit_code: int | None
    oom_killed: bool
    output: tuple[OutputLine, ...]


@dataclass(frozen=True)
class ProcessReport:
    process: ProcessDiagnosis
    state: ProcessState
    exit_codes: tuple[int, ...]  # of its crashes in a row, oldest first, its own included
    output: tuple[OutputLine, ...]  # what it printed before it was ever healthy (the last N)
    previous_crash: Crash | None
    hint: str | None


@dataclass(frozen=True)
class Diagnosis:
    app: str
    promotion: Promotion | None
    release_id: str | None
    processes: tuple[ProcessReport, ...]
    hidden: int  # processes in a fine state, not shown without `everything`
    events: tuple[Event, ...]
    # Required keys (of its manifest) the app's latest release lacks: a promotion of it is
    # refused before anything starts, so no process of it tells.
    missing_env: tuple[str, ...] = ()
    latest_release_id: str | None = None


async def diagnose(
    ctx: Context,
    app: str,
    *,
    service: str | None = None,
    lines: int = 20,
    everything: bool = False,
    events: bool = True,
) -> Diagnosis:
    """The processes of the release the app's latest promotion promoted, judged."""
    with ctx.store.unit_of_work() as uow:
        uow.apps.get(app)
        newest = uow.releases.latest(app)
        missing = tuple(_missing_env(newest)) if newest is not None else ()
        latest_id = newest.id if newest is not None else None
        latest = uow.promotions.of_app(app, 1)
        promotion = latest[0] if latest else None
        if promotion is None:
            return Diagnosis(app, None, None, (), 0, (), missing, latest_id)
        release = uow.releases.get(app, promotion.release_id)
        found = uow.events.list(app, since=promotion.created_at, limit=EVENTS_READ)
    graces = _graces(release)
    observed = [p for p in await ctx.runtime.diagnose(app) if p.release_id == release.id]
    now = utcnow()
    reports = []
    for chain in diagnosis.fold_crashes(observed):
        process = chain.process
        if service is not None and process.service != service:
            continue
        grace = graces.get(process.service, 0.0)
        reports.append(
            _report(app, chain, lines, (now - process.started_at).total_seconds() < grace)
        )
    shown = tuple(r for r in reports if everything or r.state not in FINE)
    # The promotion's own, and what happened to its processes outside it (crashes, restarts).
    objects = {p.id for p in observed} | {p.service for p in observed}
    kept = [e for e in found if e.promotion_id == promotion.id or e.object in objects]
    return Diagnosis(
        app=app,
        promotion=promotion,
        release_id=release.id,
        processes=shown,
        hidden=len(reports) - len(shown),
        events=tuple(kept[-MAX_EVENTS:]) if events else (),
        missing_env=missing,
        latest_release_id=latest_id,
    )


def _graces(release: Release) -> dict[str, float]:
    """Each service's health grace: a check failing within it is no failure yet."""
    try:
        manifest = manifest_of(release)
    except ShipmateError:
        return {}
    return {s.name: float(s.health.grace) for s in manifest.services}


def _missing_env(release: Release) -> list[str]:
    try:
        return manifest_of(release).missing_env(release.env)
    except ShipmateError:
        return []


def _report(app: str, chain: Chain[ProcessDiagnosis], count: int, in_grace: bool) -> ProcessReport:
    process = chain.process
    state = diagnosis.classify(
        status=process.status,
        healthy=process.healthy_at is not None,
        stopped=process.stopped,
        oom_killed=process.oom_killed,
        health_problem=process.health_problem,
        in_grace=in_grace,
        crashes=chain.crashes,
    )
    output = tuple(OutputLine(t, x) for t, x in _output(process, count))
    crashes = [*chain.replaced, *([process] if diagnosis.crashed(process) else [])]
    previous = chain.replaced[-1] if chain.replaced else None
    crash = None
    if previous is not None:
        crash = Crash(
            previous.id,
            previous.exit_code,
            previous.oom_killed,
            tuple(OutputLine(t, x) for t, x in _output(previous, count, last=True)),
        )
    # The hint reads its own output, and that of the crash before it (a replacement that is
    # crash-looping may not have printed why yet).
    texts = [line.text for line in (crash.output if crash is not None else ())]
    texts += [line.text for line in output]
    hint = diagnosis.hint(
        state,
        app=app,
        output=texts,
        exit_code=process.exit_code if process.exit_code is not None else _last_code(chain),
        health_problem=process.health_problem,
        port=process.port,
        command=process.command,
        memory_limit=process.memory_limit,
        healthy=process.healthy_at is not None,
    )
    return ProcessReport(
        process=process,
        state=state,
        exit_codes=tuple(c.exit_code for c in crashes if c.exit_code is not None),
        output=output,
        previous_crash=crash,
        hint=hint,
    )


def _last_code(chain: Chain[ProcessDiagnosis]) -> int | None:
    return chain.replaced[-1].exit_code if chain.replaced else None


def _output(
    process: ProcessDiagnosis, count: int, last: bool = False
) -> list[tuple[datetime, str]]:
    """What it printed before it was first healthy (`last`: before it exited), last `count`
    lines."""
    healthy_at = None if last else process.healthy_at
    parsed = []
    for path in process.logs:
        for raw in _read(path, head=healthy_at is not None):
            line = diagnosis.parse_output_line(raw)
            if line is not None:
                parsed.append(line)
    return diagnosis.before(parsed, healthy_at, count)


def _read(path: Path, head: bool) -> list[str]:
    """The complete lines of the start (`head`) or of the end of an output file."""
    try:
        with path.open("rb") as f:
            if head:
                data = f.read(HEAD_BYTES)
                cut = data.rfind(b"\n") + 1 if len(data) == HEAD_BYTES else len(data)
                data = data[:cut]
            else:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - TAIL_BYTES))
                data = f.read()
                if size > TAIL_BYTES:
                    data = data[data.find(b"\n") + 1 :]
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()
