"""One service's rolling update on this machine: observe, ask the planner, execute.

The arithmetic of SPEC section 4 (how many to start, which to stop, when to wait) is
`shipmate.domain.rollout`'s alone; this module turns its steps into processes started under
shims, health checks, router changes and stops, and turns health checks back into what the
planner observes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import httpx

from shipmate.domain.rollout import Bounds, Done, Fail, Health, Observed, Route, Start, Stop, Wait
from shipmate.domain.rollout import plan as plan_rollout
from shipmate.router.routes import Routes
from shipmate.runtimes.base import DesiredState, EventSink, RolloutFailed, ServiceSpec
from shipmate.runtimes.local.health import ProcessExited, wait_healthy
from shipmate.runtimes.local.process import LocalProcess

# How much of a crashed process's output its failure quotes.
TAIL_LINES = 3
TAIL_WIDTH = 200
TAIL_BYTES = 16384


class ProcessHost(Protocol):
    """What a rollout needs of the runtime that owns the processes."""

    routes: Routes
    client: httpx.AsyncClient

    def live(self, app: str, service: str | None = None) -> list[LocalProcess]:
        """Running processes of the app (of one service), stopping ones left out."""

    async def start(
        self, desired: DesiredState, spec: ServiceSpec, emit: EventSink
    ) -> LocalProcess:
        """A new process of `spec` under a shim, running (not yet healthy)."""

    async def begin_stop(self, process: LocalProcess, grace: float, emit: EventSink) -> None:
        """Out of the router now; drain and stop in the background."""


def is_current(process: LocalProcess, desired: DesiredState) -> bool:
    """Whether `process` is what `desired` runs, or has to be replaced."""
    if process.release_id != desired.release_id:
        return False
    if desired.restart_before is None:
        return True
    if desired.restart_services and process.service not in desired.restart_services:
        return True
    return process.started_at >= desired.restart_before


class ServiceRollout:
    """The rolling update of one service to `desired`, failing after `deadline` (monotonic)."""

    def __init__(
        self,
        host: ProcessHost,
        desired: DesiredState,
        spec: ServiceSpec,
        emit: EventSink,
        deadline: float,
    ) -> None:
        self.host = host
        self.desired = desired
        self.spec = spec
        self.emit = emit
        self.deadline = deadline
        self.bounds = Bounds(spec.count, spec.minimum, spec.maximum)
        # What the planner observes: the service's processes in the order they started,
        # which of them are current, their health, and which are in service.
        self.processes: list[LocalProcess] = []
        self.current: set[str] = set()
        self.health: dict[str, Health] = {}
        self.in_service: set[str] = set()
        self.checks: dict[asyncio.Future[None], LocalProcess] = {}

    async def run(self) -> None:
        """Converge; raise RolloutFailed when a new process dies or the deadline passes."""
        await self._take_stock()
        try:
            while True:
                for step in plan_rollout(self.bounds, self._observed()):
                    match step:
                        case Start(count=count, total=total):
                            await self._start(count, total)
                        case Route(ids=ids):
                            await self._route(ids)
                        case Stop(ids=ids):
                            await self._stop(ids)
                        case Wait():
                            await self._wait()
                        case Fail(process_id=process_id):
                            raise self._failure(process_id)
                        case Done():
                            return
        finally:
            for check in self.checks:
                check.cancel()

    async def _take_stock(self) -> None:
        app, service, routes = self.desired.app, self.spec.name, self.host.routes
        if self.spec.port is not None:
            await routes.declare(app, service)
        self.processes = self.host.live(app, service)
        routed: set[str] | None = None
        if self.spec.port is not None:
            routed = set(await routes.backends(app, service))
            # Routes of processes that died while the rack was down: the router would skip
            # them, but only after a refused connection each time.
            for stale in routed - {p.backend for p in self.processes}:
                await routes.remove_backend(app, service, stale)
        for process in self.processes:
            if not is_current(process, self.desired):
                continue
            self.current.add(process.id)
            # A routed process passed its check once; one without a port is taken as it runs.
            if routed is None or process.backend in routed:
                self.health[process.id] = Health.HEALTHY
                self.in_service.add(process.id)
            else:
                self._check(process)

    def _observed(self) -> list[Observed]:
        return [
            Observed(
                p.id,
                current=p.id in self.current,
                health=self.health.get(p.id, Health.HEALTHY),
                routed=p.id in self.in_service or p.id not in self.current,
            )
            for p in self.processes
        ]

    def _check(self, process: LocalProcess) -> None:
        self.health[process.id] = Health.STARTING
        check = wait_healthy(process, self.spec.health, self.host.client, self.emit)
        self.checks[asyncio.ensure_future(check)] = process

    def _process(self, process_id: str) -> LocalProcess:
        return next(p for p in self.processes if p.id == process_id)

    async def _start(self, count: int, total: int) -> None:
        self.emit(self.spec.name, f"Scaled up release {self.desired.release_id} to {total}")
        started = await asyncio.gather(
            *(self.host.start(self.desired, self.spec, self.emit) for _ in range(count))
        )
        for process in started:
            self.processes.append(process)
            self.current.add(process.id)
            self._check(process)

    async def _route(self, ids: tuple[str, ...]) -> None:
        for process_id in ids:
            process = self._process(process_id)
            self.in_service.add(process_id)
            if self.spec.port is not None:
                await self.host.routes.add_backend(
                    self.desired.app, self.spec.name, process.backend
                )
            self.emit(process_id, "Healthy")

    async def _stop(self, ids: tuple[str, ...]) -> None:
        stopping = [self._process(process_id) for process_id in ids]
        for check, process in list(self.checks.items()):
            if process.id in ids:
                check.cancel()
                del self.checks[check]
        self.processes = [p for p in self.processes if p.id not in ids]
        await asyncio.gather(
            *(self.host.begin_stop(p, self.spec.termination_grace, self.emit) for p in stopping)
        )

    async def _wait(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RolloutFailed("deadline", deadline_reason(self.checks.values(), self.desired))
        done, _ = await asyncio.wait(
            self.checks, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
        )
        for check in done:
            process = self.checks.pop(check)
            problem = check.exception()
            if isinstance(problem, ProcessExited):
                self.health[process.id] = Health.FAILED
            elif problem is not None:
                raise problem
            else:
                self.health[process.id] = Health.HEALTHY

    def _failure(self, process_id: str) -> RolloutFailed:
        return exited_before_healthy(self._process(process_id))


def exited_before_healthy(process: LocalProcess) -> RolloutFailed:
    lines = last_output(process.log_path)
    output = f'last output: "{" / ".join(lines)}"' if lines else "no output"
    return RolloutFailed(
        "error",
        f"process {process.id} exited with code {process.exit_code} before it became "
        f"healthy: {output}",
    )


def last_output(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last non-blank lines a process wrote (without their timestamps), each cut short:
    what a failure's one line can quote of why the process died."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES))
            data = f.read()
    except OSError:
        return []
    found = []
    for raw in data.decode("utf-8", "replace").splitlines():
        text = raw.split(" ", 1)[1].strip() if " " in raw else ""
        if text:
            found.append(text if len(text) <= TAIL_WIDTH else text[: TAIL_WIDTH - 3] + "...")
    return found[-lines:]


def deadline_reason(waiting: Iterable[LocalProcess], desired: DesiredState) -> str:
    parts = []
    for process in sorted(waiting, key=lambda p: p.id):
        last = f" (last check: {process.health_problem})" if process.health_problem else ""
        parts.append(f"{process.id}{last}")
    return f"deadline exceeded: {', '.join(parts)} not healthy within {desired.deadline:g}s"
