"""A Runtime whose processes are data: health, crashes and slowness are scripted by the test.

It converges on a DesiredState as the local runtime does, step for step as users see it (the
same event texts: `Scaled up release R to N`, `Created process: ...`, `Started process ...`,
`Healthy`, `Stopping`), and fails as it does (`RolloutFailed("deadline" | "error", ...)`),
but starts no OS process and waits on nothing but what the test scripts.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from shipmate.common.latency import LATENCY_BOUNDS_MS
from shipmate.domain.errors import NotFound
from shipmate.domain.humanize import utcnow
from shipmate.domain.ids import new_process_id, release_hash
from shipmate.domain.traffic import Counts
from shipmate.runtimes.base import (
    Attached,
    DesiredState,
    EventSink,
    LogSource,
    ProcessDiagnosis,
    ProcessInfo,
    RolloutFailed,
    ServiceSpec,
    Terminal,
    Traffic,
)

Health = Literal["ok", "never", "crash", "hold"]


@dataclass
class Script:
    """How the processes of one release behave.

    health: "ok" healthy after `delay`; "never" not healthy by the deadline (reported after a
    tiny sleep, not the real deadline); "crash" exits with `exit_code` after `delay`, before it
    is healthy; "hold" healthy only once the test calls `FakeRuntime.proceed(release)` (or the
    deadline passes first). A `delay` longer than the deadline is a deadline too.
    `run_exit`/`run_output`: what one-offs of the release (the release command among them)
    print and exit with; `run_hold`: they print and then run until the rack dies (their
    process is left to the shim: `FakeRuntime.restarted` has it for `adopt`).
    """

    health: Health = "ok"
    delay: float = 0.0
    exit_code: int = 3
    run_exit: int = 0
    run_output: tuple[str, ...] = ()
    run_hold: bool = False


@dataclass
class FakeProcess:
    id: str
    app: str
    service: str
    release_id: str
    command: str
    pid: int
    port: int | None
    started_at: datetime
    status: str = "starting"  # starting, running, stopping, exited
    oneoff: bool = False
    release_phase: bool = False  # the one-off is a promotion's release command

    def info(self) -> ProcessInfo:
        return ProcessInfo(
            id=self.id,
            app=self.app,
            service=self.service,
            release_id=self.release_id,
            status=self.status,
            pid=self.pid,
            port=self.port,
            started_at=self.started_at,
            command=self.command,
        )


def _quiet(app: str, obj: str, message: str) -> None:
    return None


@dataclass
class _Failure:
    error: BaseException
    release_id: str | None


class FakeRuntime:
    name = "fake"

    def __init__(
        self,
        events: Callable[[str, str, str], object] = _quiet,
        *,
        survivors: list[FakeProcess] | None = None,
        deadline_sleep: float = 0.01,
    ) -> None:
        # Assignable after construction: the EventLog that takes these is built with the
        # runtime's name, so it comes into being after the runtime.
        self.events: Callable[[str, str, str], object] = events
        self.deadline_sleep = deadline_sleep
        self.table: dict[str, FakeProcess] = {}
        self.stopped: list[FakeProcess] = []  # every process stopped or exited, in order
        self.desired: dict[str, DesiredState] = {}
        self.scripts: dict[str, Script] = {}
        self.applied: list[DesiredState] = []  # every apply asked for, failed ones too
        self.runs: list[tuple[str, str, str]] = []  # one-offs: (release, service, command)
        self.on_apply: Callable[[DesiredState], None] | None = None
        # What `diagnose` reports of an app, when a test scripts it.
        self.diagnosed: dict[str, list[ProcessDiagnosis]] = {}
        self.shut_down = False
        self._survivors = list(survivors or [])
        self._failures: list[_Failure] = []
        self._gates: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._pids = itertools.count(1000)
        self._ports = itertools.count(20000)
        self.counts: dict[str, Counts] = {}  # what "the router" counted, per process
        self.canaries: dict[str, tuple[str, int]] = {}  # app -> (release, percent)
        self.ended_canaries: list[tuple[str, bool]] = []

    @classmethod
    def restarted(cls, before: FakeRuntime) -> FakeRuntime:
        """The runtime of a rack started again after `before`'s rack died: the processes
        that were alive then (their shims kept them) are there for `adopt`."""
        alive = [replace(p) for p in before.table.values() if p.status != "exited"]
        runtime = cls(survivors=alive, deadline_sleep=before.deadline_sleep)
        runtime.scripts = dict(before.scripts)
        return runtime

    # scripting
    def script(
        self,
        release_id: str,
        *,
        health: Health = "ok",
        delay: float = 0.0,
        exit_code: int = 3,
        run_exit: int = 0,
        run_output: tuple[str, ...] = (),
        run_hold: bool = False,
    ) -> None:
        self.scripts[release_id] = Script(health, delay, exit_code, run_exit, run_output, run_hold)

    def fail_next_apply(
        self, error: BaseException | None = None, *, release_id: str | None = None
    ) -> None:
        """Make the next apply (of `release_id`, or of any release) raise `error` at once."""
        failure = error or RuntimeError("the fake runtime was told to fail")
        self._failures.append(_Failure(failure, release_id))

    def proceed(self, release_id: str) -> None:
        """Let the held ("hold") processes of `release_id` become healthy."""
        self._gate(release_id).set()

    # observation helpers for the tests
    def live(self, app: str, release_id: str | None = None) -> list[FakeProcess]:
        return [
            p
            for p in self.table.values()
            if p.app == app
            and not p.oneoff
            and p.status in ("starting", "running")
            and (release_id is None or p.release_id == release_id)
        ]

    def answer(self, app: str, release_id: str, ok: int, errors: int = 0, ms: int = 5) -> None:
        """Count `ok` 200s and `errors` 500s answered by the release's routed processes."""
        routed = [p for p in self.live(app, release_id) if p.port is not None]
        bucket = next(i for i, b in enumerate((*LATENCY_BOUNDS_MS, 10**9)) if ms <= b)
        latency = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        latency[bucket] = ok + errors
        share = Counts((0, ok, 0, 0, errors), tuple(latency))
        first = routed[0].id  # all on the first: the sums per release are what is judged
        self.counts[first] = self.counts.get(first, Counts()) + share

    # the Runtime protocol
    async def traffic(self, app: str) -> list[Traffic]:
        return [
            Traffic(p.id, p.release_id, self.counts.get(p.id, Counts()))
            for p in self.live(app)
            if p.port is not None
        ]

    async def canary(self, desired: DesiredState, percent: int, emit: EventSink) -> None:
        for spec in desired.services:
            if spec.port is None:
                continue
            count = max(1, -(-spec.count * percent // 100))
            emit(spec.name, f"Scaled up release {desired.release_id} to {count} (canary)")
            started = [self._start(desired, spec, emit) for _ in range(count)]
            await self._become_healthy(desired, spec, started, emit)
        self.canaries[desired.app] = (desired.release_id, percent)

    async def end_canary(self, app: str, keep: bool) -> None:
        self.canaries.pop(app, None)
        self.ended_canaries.append((app, keep))

    async def apply(self, desired: DesiredState, emit: EventSink) -> None:
        self.applied.append(desired)
        if self.on_apply is not None:
            self.on_apply(desired)
        for failure in self._failures:
            if failure.release_id in (None, desired.release_id):
                self._failures.remove(failure)
                raise failure.error
        async with self._locks.setdefault(desired.app, asyncio.Lock()):
            await self._converge(desired, emit)
            self.desired[desired.app] = desired

    async def processes(self, app: str) -> list[ProcessInfo]:
        return [p.info() for p in self.table.values() if p.app == app and p.status != "exited"]

    async def remove(self, app: str, emit: EventSink) -> None:
        self.desired.pop(app, None)
        for process in [p for p in self.table.values() if p.app == app]:
            self._stop(process, emit)

    async def adopt(self) -> list[ProcessInfo]:
        adopted = []
        for process in self._survivors:
            if process.id not in self.table:
                self.table[process.id] = process
                adopted.append(process.info())
        self._survivors = []
        return adopted

    async def stop_process(self, app: str, process_id: str, emit: EventSink) -> None:
        process = self.table.get(process_id)
        if process is None or process.app != app or process.status == "exited":
            raise NotFound(f"no such process: {process_id} (app {app}); see `shipmate ps`")
        self._stop(process, emit)
        desired = self.desired.get(app)
        if desired is None:
            return
        spec = next((s for s in desired.services if s.name == process.service), None)
        if spec is None:
            return

        def replaced(obj: str, message: str) -> None:
            self.events(app, obj, message)

        missing = spec.count - len(
            [p for p in self.live(app, desired.release_id) if p.service == spec.name]
        )
        for _ in range(missing):
            self._start(desired, spec, replaced).status = "running"

    async def run(
        self, desired: DesiredState, service: str, command: str, *, release_phase: bool = False
    ) -> AsyncIterator[tuple[str, str | int]]:
        if service not in {s.name for s in desired.services}:
            known = ", ".join(s.name for s in desired.services)
            raise NotFound(f"no service {service} in release {desired.release_id}: {known}")
        self.runs.append((desired.release_id, service, command))
        script = self.scripts.get(desired.release_id, Script())
        process = FakeProcess(
            id=new_process_id(service, desired.release_id),
            app=desired.app,
            service=service,
            release_id=desired.release_id,
            command=command,
            pid=next(self._pids),
            port=None,
            started_at=utcnow(),
            status="running",
            oneoff=True,
            release_phase=release_phase,
        )
        self.table[process.id] = process
        for line in script.run_output:
            await asyncio.sleep(0)
            yield "line", line
        if script.run_hold:
            await asyncio.Event().wait()  # until cancelled: the rack died, the shim runs on
        process.status = "exited"
        self.table.pop(process.id, None)
        yield "exit", script.run_exit

    async def attach(
        self, desired: DesiredState, service: str, command: str, terminal: Terminal | None
    ) -> Attached:
        if service not in {s.name for s in desired.services}:
            known = ", ".join(s.name for s in desired.services)
            raise NotFound(f"no service {service} in release {desired.release_id}: {known}")
        self.runs.append((desired.release_id, service, command))
        return FakeAttached(self.scripts.get(desired.release_id, Script()).run_exit, terminal)

    async def stop_release_commands(self, app: str) -> list[tuple[ProcessInfo, str]]:
        found = [
            p
            for p in self.table.values()
            if p.app == app and p.release_phase and p.status != "exited"
        ]
        for process in found:
            process.status = "exited"
            self.table.pop(process.id, None)
            self.stopped.append(process)
        return [(p.info(), "Stopped (exit code 143)") for p in found]

    def log_sources(self, app: str) -> list[LogSource]:
        return []

    async def diagnose(self, app: str) -> list[ProcessDiagnosis]:
        """What `diagnosed` scripts for the app (a test writes its records and output files),
        else its processes as the table has them: running ones healthy, stopped ones
        stopped."""
        if app in self.diagnosed:
            return list(self.diagnosed[app])
        found = [p for p in [*self.stopped, *self.table.values()] if p.app == app and not p.oneoff]
        return [
            ProcessDiagnosis(
                id=p.id,
                service=p.service,
                release_id=p.release_id,
                status=p.status,
                started_at=p.started_at,
                command=p.command,
                port=p.port,
                healthy_at=p.started_at if p.status in ("running", "exited") else None,
                exit_code=0 if p.status == "exited" else None,
                exited_at=p.started_at if p.status == "exited" else None,
                stopped=p.status == "exited",
            )
            for p in found
        ]

    async def shutdown(self) -> None:
        self.shut_down = True

    # convergence
    def _is_current(self, process: FakeProcess, desired: DesiredState) -> bool:
        if process.release_id != desired.release_id:
            return False
        if desired.restart_before is None:
            return True
        if desired.restart_services and process.service not in desired.restart_services:
            return True
        return process.started_at >= desired.restart_before

    async def _converge(self, desired: DesiredState, emit: EventSink) -> None:
        wanted = {s.name for s in desired.services}
        for spec in desired.services:
            live = [p for p in self.live(desired.app) if p.service == spec.name]
            new = [p for p in live if self._is_current(p, desired)]
            old = [p for p in live if not self._is_current(p, desired)]
            for extra in new[spec.count :]:  # scaling down within the release
                self._stop(extra, emit)
            new = new[: spec.count]
            missing = spec.count - len(new)
            if missing > 0:
                emit(spec.name, f"Scaled up release {desired.release_id} to {spec.count}")
                started = [self._start(desired, spec, emit) for _ in range(missing)]
                await self._become_healthy(desired, spec, started, emit)
            for process in old:
                self._stop(process, emit)
        for process in self.live(desired.app):
            if process.service not in wanted:
                self._stop(process, emit)

    async def _become_healthy(
        self,
        desired: DesiredState,
        spec: ServiceSpec,
        started: list[FakeProcess],
        emit: EventSink,
    ) -> None:
        script = self.scripts.get(desired.release_id, Script())
        timed_out = False
        try:
            async with asyncio.timeout(desired.deadline):
                await asyncio.sleep(script.delay)
                if script.health == "hold":
                    await self._gate(desired.release_id).wait()
        except TimeoutError:
            timed_out = True
        if script.health == "never" and not timed_out:
            await asyncio.sleep(min(self.deadline_sleep, desired.deadline))
            timed_out = True
        if timed_out:
            last = f" (last check: GET {spec.health.path}: HTTP 503)" if spec.port else ""
            names = ", ".join(f"{p.id}{last}" for p in sorted(started, key=lambda p: p.id))
            raise RolloutFailed(
                "deadline", f"deadline exceeded: {names} not healthy within {desired.deadline:g}s"
            )
        if script.health == "crash":
            crashed = started[0]
            crashed.status = "exited"
            del self.table[crashed.id]
            self.stopped.append(crashed)
            self.events(crashed.app, crashed.id, f"Exited with code {script.exit_code}")
            raise RolloutFailed(
                "error",
                f"process {crashed.id} exited with code {script.exit_code} "
                "before it became healthy",
            )
        for process in started:
            process.status = "running"
            emit(process.id, "Healthy")

    def _start(self, desired: DesiredState, spec: ServiceSpec, emit: EventSink) -> FakeProcess:
        process_id = new_process_id(spec.name, desired.release_id)
        process = FakeProcess(
            id=process_id,
            app=desired.app,
            service=spec.name,
            release_id=desired.release_id,
            command=spec.command,
            pid=next(self._pids),
            port=next(self._ports) if spec.port is not None else None,
            started_at=utcnow(),
        )
        self.table[process.id] = process
        emit(f"{spec.name}-{release_hash(desired.release_id)}", f"Created process: {process.id}")
        where = f", port {process.port}" if process.port is not None else ""
        emit(process.id, f"Started process (pid {process.pid}{where})")
        return process

    def _stop(self, process: FakeProcess, emit: EventSink) -> None:
        if process.status == "exited":
            return
        process.status = "stopping"
        emit(process.id, "Stopping")
        process.status = "exited"
        emit(process.id, "Stopped (exit code 0)")
        self.table.pop(process.id, None)
        self.stopped.append(process)

    def _gate(self, release_id: str) -> asyncio.Event:
        return self._gates.setdefault(release_id, asyncio.Event())


class FakeAttached:
    """An interactive one-off that echoes its input back, and exits with the script's code
    at the end of its input."""

    def __init__(self, code: int, terminal: Terminal | None) -> None:
        self.code = code
        self.terminal = terminal
        self.output: asyncio.Queue[bytes] = asyncio.Queue()
        self.signals: list[int] = []
        self.closed = False

    async def read(self) -> bytes:
        return await self.output.get()

    async def write(self, data: bytes) -> None:
        self.output.put_nowait(data)

    def close_stdin(self) -> None:
        self.output.put_nowait(b"")

    def resize(self, terminal: Terminal) -> None:
        self.terminal = terminal

    def signal(self, signum: int) -> None:
        self.signals.append(signum)

    async def wait(self) -> int:
        return self.code

    async def close(self) -> None:
        self.closed = True
