"""The local runtime: app processes on this machine, rolled by health checks.

Every process runs under a shim (shim.py) in `SHIPMATE_HOME/run/<app>/<process id>/`, so the
rack can stop or crash while apps keep serving; `adopt` takes them back at the next start.
This module owns the processes (start, stop, adoption, replacement after a crash); a
rolling update is rolling.py's, the restart delays supervision.py's, one-offs' output
oneoff.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import httpx

from shipmate.builder.python import venv_bin
from shipmate.domain.errors import NotFound
from shipmate.domain.ids import new_process_id, release_hash
from shipmate.router.routes import Routes
from shipmate.runtimes.base import (
    AppEventSink,
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
from shipmate.runtimes.local import canary, cgroups, isolation
from shipmate.runtimes.local.attached import Ends, LocalAttached
from shipmate.runtimes.local.oneoff import follow
from shipmate.runtimes.local.process import LocalProcess, Streams, free_port
from shipmate.runtimes.local.rolling import ServiceRollout
from shipmate.runtimes.local.shim import DEFAULT_LOG_CAP
from shipmate.runtimes.local.supervision import CrashBackoff

# How long a stopping process may take to finish requests already routed to it.
DRAIN_TIMEOUT = 30.0
# Exited processes whose output is kept for `logs`, and whose record for `deploy-debug`,
# per app.
KEEP_EXITED = 50
# What a process of a deleted app is given between SIGTERM and SIGKILL.
REMOVE_GRACE = 10.0
# A replacement (after a crash or `ps stop`) that is not healthy by then is given up on.
REPLACE_DEADLINE = 120.0
# In the directory of a one-off that is a promotion's release command: its output is the
# promotion's events already, and a restarted rack must find it to stop it.
RELEASE_PHASE_MARK = "release-phase"
# A release command found after a restart is stopped with this grace (its spec is gone).
RELEASE_STOP_GRACE = 10.0


def _quiet(app: str, obj: str, message: str) -> None:
    return None


class LocalRuntime:
    name = "local"

    def __init__(
        self,
        home: Path,
        routes: Routes,
        events: AppEventSink = _quiet,
        log_cap: int = DEFAULT_LOG_CAP,
    ) -> None:
        self.home = home
        self.run_dir = home / "run"
        self.routes = routes
        self.events = events
        self.log_cap = log_cap
        self._processes: dict[str, LocalProcess] = {}
        # Per app, the processes that exited (stopped or crashed), oldest first, at most
        # KEEP_EXITED: what `deploy-debug` reports of a promotion its revert undid.
        self._exited: dict[str, OrderedDict[str, LocalProcess]] = {}
        self._desired: dict[str, DesiredState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._backoff = CrashBackoff()
        self.client = httpx.AsyncClient()
        # "" when each app runs as its own user; otherwise what the rack warns of.
        self.isolation = isolation.warning(home)
        if self.isolation:
            logging.getLogger("shipmate.rack").warning("WARNING: %s", self.isolation)
        if isolation.active(home):
            isolation.harden_home(home)

    def lock(self, app: str) -> asyncio.Lock:
        """Held while the app's processes change (a rollout, a canary)."""
        return self._locks.setdefault(app, asyncio.Lock())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # observation
    async def processes(self, app: str) -> list[ProcessInfo]:
        return [p.info() for p in self._processes.values() if p.app == app and p.alive]

    async def traffic(self, app: str) -> list[Traffic]:
        return await canary.traffic(self, app)

    async def canary(self, desired: DesiredState, percent: int, emit: EventSink) -> None:
        await canary.start(self, desired, percent, emit)

    async def end_canary(self, app: str, keep: bool) -> None:
        await canary.end(self, app, keep)

    def live(self, app: str, service: str | None = None) -> list[LocalProcess]:
        """Running processes of the app (of one service), one-offs and stopping ones left out."""
        return [
            p
            for p in self._processes.values()
            if p.app == app
            and not p.oneoff
            and (service is None or p.service == service)
            and p.alive
            and p.status != "stopping"
        ]

    def log_sources(self, app: str) -> list[LogSource]:
        sources = []
        for directory in sorted((self.run_dir / app).glob("*/")):
            if (directory / RELEASE_PHASE_MARK).exists():
                continue  # its lines are the promotion's events: shown once, there
            service = directory.name.split("-", 1)[0]
            for name in ("output.log.1", "output.log"):
                if (directory / name).exists():
                    sources.append(LogSource(directory.name, service, directory / name))
        return sources

    async def diagnose(self, app: str) -> list[ProcessDiagnosis]:
        running = [p for p in self._processes.values() if p.app == app and not p.oneoff]
        exited = [p for p in self._exited.get(app, {}).values() if p.id not in self._processes]
        return [_diagnosis(p) for p in sorted([*exited, *running], key=lambda p: p.started_at)]

    def _record_exit(self, process: LocalProcess) -> None:
        """Keep the record of an exited process (and forget it as a running one)."""
        self._processes.pop(process.id, None)
        if process.oneoff:
            return
        exited = self._exited.setdefault(process.app, OrderedDict())
        exited[process.id] = process
        while len(exited) > KEEP_EXITED:
            exited.popitem(last=False)

    # adoption
    async def adopt(self) -> list[ProcessInfo]:
        adopted = []
        for directory in sorted(self.run_dir.glob("*/*/")):
            if directory.name in self._processes:
                continue
            process = LocalProcess.adopt(directory)
            if process is None:
                continue
            self._processes[process.id] = process
            self._spawn(self._observe_exit(process))
            adopted.append(process.info())
        return adopted

    # desired state
    async def apply(self, desired: DesiredState, emit: EventSink) -> None:
        async with self.lock(desired.app):
            await self._apply(desired, emit)
            self._desired[desired.app] = desired

    async def _apply(self, desired: DesiredState, emit: EventSink) -> None:
        deadline = time.monotonic() + desired.deadline
        wanted = {s.name for s in desired.services}
        rollouts = [
            asyncio.ensure_future(self._roll(desired, spec, emit, deadline))
            for spec in desired.services
        ]
        try:
            await asyncio.gather(*rollouts)
        except BaseException:
            for task in rollouts:
                task.cancel()
            await asyncio.gather(*rollouts, return_exceptions=True)
            raise
        for process in self.live(desired.app):
            if process.service not in wanted:
                await self.begin_stop(process, 10.0, emit)

    async def _roll(
        self, desired: DesiredState, spec: ServiceSpec, emit: EventSink, deadline: float
    ) -> None:
        await ServiceRollout(self, desired, spec, emit, deadline).run()

    async def start(
        self,
        desired: DesiredState,
        spec: ServiceSpec,
        emit: EventSink,
        command: str | None = None,
        oneoff: bool = False,
        mark: str | None = None,
        streams: Streams | None = None,
    ) -> LocalProcess:
        """A new process of `spec` (or a one-off running `command`), running under its shim."""
        process_id = new_process_id(spec.name, desired.release_id)
        while process_id in self._processes or (self.run_dir / desired.app / process_id).exists():
            process_id = new_process_id(spec.name, desired.release_id)
        process = LocalProcess(
            id=process_id,
            app=desired.app,
            service=spec.name,
            release_id=desired.release_id,
            command=command or spec.command,
            port=free_port() if spec.port is not None or oneoff else None,
            directory=self.run_dir / desired.app / process_id,
            oneoff=oneoff,
        )
        self._processes[process.id] = process
        try:
            process.user = await asyncio.to_thread(self._grant, desired)
        except BaseException:
            self._processes.pop(process.id, None)
            raise
        # A one-off of the service gets the service's limits.
        process.cgroups = cgroups.create(desired.app, process.id, spec.memory, spec.cpu)
        if not oneoff:
            emit(
                f"{spec.name}-{release_hash(desired.release_id)}", f"Created process: {process.id}"
            )
        cwd = desired.directory / spec.build
        if mark is not None:
            # Before the process starts, so no reader ever sees its directory unmarked.
            process.directory.mkdir(parents=True, exist_ok=True)
            (process.directory / mark).touch()
        if streams is not None and streams.mode == "tty" and process.user is not None:
            # Its own terminal, as a login gives one: `tty`, and what reopens /dev/pts/N, work.
            os.fchown(streams.stdin, process.user.uid, process.user.gid)
        try:
            await process.spawn(
                cwd,
                dict(spec.environment),
                venv_bin(cwd),
                spec.termination_grace,
                self.log_cap,
                streams,
            )
        except BaseException:
            self._processes.pop(process.id, None)
            if process.launched:
                # Its shim removes the cgroups when it exits.
                self._spawn(process.abandon(spec.termination_grace))
            elif process.cgroups is not None:
                cgroups.remove(process.cgroups)
            raise
        if not oneoff:
            where = f", port {process.port}" if process.port is not None else ""
            emit(process.id, f"Started process (pid {process.pid}{where})")
            self._spawn(self._observe_exit(process))
        self._prune(desired.app)
        return process

    def _grant(self, desired: DesiredState) -> isolation.AppUser | None:
        """The app's user (created for an app older than isolation), with its build readable."""
        user = isolation.ensure_user(desired.app, self.home)
        if user is not None:
            isolation.grant_build(desired.directory, user)
        return user

    def _prune(self, app: str) -> None:
        exited = [
            d
            for d in (self.run_dir / app).glob("*/")
            if d.name not in self._processes or not self._processes[d.name].alive
        ]
        exited.sort(key=lambda d: d.stat().st_mtime)
        for directory in exited[:-KEEP_EXITED]:
            shutil.rmtree(directory, ignore_errors=True)

    async def _observe_exit(self, process: LocalProcess) -> None:
        await process.exited.wait()
        if process.id in self._processes:  # else stopped (and recorded) or its app removed
            self._record_exit(process)
        if process.port is not None:
            await self.routes.remove_backend(process.app, process.service, process.backend)
        if process.expected_exit:
            return
        self.events(process.app, process.id, process.exit_description)
        desired = self._desired.get(process.app)
        if desired is None or desired.release_id != process.release_id:
            return  # not part of what the app runs (a rollout handles its own failures)
        delay, crashes = self._backoff.crashed(process.app, process.service)
        self.events(
            process.app,
            process.service,
            f"Restarting {process.id} in {delay:g}s (crash {crashes} in a row)",
        )
        await asyncio.sleep(delay)
        await self._replenish(process.app, process.service)

    async def _replenish(self, app: str, service: str) -> None:
        """Start what the app's current desired state misses for one service."""
        async with self.lock(app):
            desired = self._desired.get(app)
            if desired is None:
                return
            spec = next((s for s in desired.services if s.name == service), None)
            if spec is None:
                return

            def emit(obj: str, message: str) -> None:
                self.events(app, obj, message)

            replacement = DesiredState(
                desired.app,
                desired.release_id,
                desired.build_id,
                desired.directory,
                (spec,),
                REPLACE_DEADLINE,
            )
            try:
                await self._roll(replacement, spec, emit, time.monotonic() + REPLACE_DEADLINE)
            except RolloutFailed as failure:
                emit(service, f"Could not replace a process: {failure.reason}")

    async def begin_stop(self, process: LocalProcess, grace: float, emit: EventSink) -> None:
        """Out of the router at once; SIGTERM in the background, once requests in flight have
        finished (SIGKILL after `grace`)."""
        process.status = "stopping"
        process.expected_exit = True
        if process.port is not None:
            await self.routes.remove_backend(process.app, process.service, process.backend)
        emit(process.id, "Stopping")
        self._spawn(self._stop(process, grace, emit))

    async def _stop(self, process: LocalProcess, grace: float, emit: EventSink) -> None:
        if process.port is not None:
            await self.routes.wait_drained(process.backend, DRAIN_TIMEOUT)
        emit(process.id, await process.stop(grace))
        self._record_exit(process)

    async def stop_process(self, app: str, process_id: str, emit: EventSink) -> None:
        process = self._processes.get(process_id)
        if process is None or process.app != app or not process.alive:
            raise NotFound(f"no such process: {process_id} (app {app}); see `shipmate ps`")
        desired = self._desired.get(app)
        spec = None
        if desired is not None:
            spec = next((s for s in desired.services if s.name == process.service), None)
        await self.begin_stop(process, spec.termination_grace if spec else 10.0, emit)
        if not process.oneoff:
            self._spawn(self._replenish(app, process.service))

    async def run(
        self, desired: DesiredState, service: str, command: str, *, release_phase: bool = False
    ) -> AsyncIterator[tuple[str, str | int]]:
        spec = next((s for s in desired.services if s.name == service), None)
        if spec is None:
            known = ", ".join(s.name for s in desired.services)
            raise NotFound(f"no service {service} in release {desired.release_id}: {known}")
        mark = RELEASE_PHASE_MARK if release_phase else None
        process = await self.start(desired, spec, _silent, command=command, oneoff=True, mark=mark)
        try:
            async for item in follow(process):
                yield item
        finally:
            if process.alive:
                await process.stop(spec.termination_grace)
            self._processes.pop(process.id, None)

    async def attach(
        self, desired: DesiredState, service: str, command: str, terminal: Terminal | None
    ) -> Attached:
        spec = next((s for s in desired.services if s.name == service), None)
        if spec is None:
            known = ", ".join(s.name for s in desired.services)
            raise NotFound(f"no service {service} in release {desired.release_id}: {known}")
        ends = Ends.open(terminal)
        try:
            process = await self.start(
                desired, spec, _silent, command=command, oneoff=True, streams=ends.streams
            )
        except BaseException:
            ends.close()
            raise
        ends.release_child_ends()
        return LocalAttached(process, ends, spec.termination_grace, lambda: self._forget(process))

    def _forget(self, process: LocalProcess) -> None:
        self._processes.pop(process.id, None)

    async def stop_release_commands(self, app: str) -> list[tuple[ProcessInfo, str]]:
        found = [
            p
            for p in self._processes.values()
            if p.app == app and p.oneoff and p.alive and (p.directory / RELEASE_PHASE_MARK).exists()
        ]
        stopped = []
        for process in found:
            info = process.info()
            stopped.append((info, await process.stop(RELEASE_STOP_GRACE)))
            self._processes.pop(process.id, None)
        return stopped

    async def remove(self, app: str, emit: EventSink) -> None:
        # Forgotten before the lock: a replacement waiting for it then finds nothing to do.
        self._desired.pop(app, None)
        async with self.lock(app):
            self._desired.pop(app, None)
            await self.routes.remove_app(app)
            # Stopped here rather than by begin_stop: only this app's processes are waited
            # for, not every background task of the runtime (other apps' exit watchers run
            # as long as their processes do).
            stopping = [p for p in self._processes.values() if p.app == app and p.alive]
            for process in stopping:
                process.status = "stopping"
                process.expected_exit = True
                emit(process.id, "Stopping")
            await asyncio.gather(*(self._stop(p, REMOVE_GRACE, emit) for p in stopping))
            for process_id in [k for k, p in self._processes.items() if p.app == app]:
                del self._processes[process_id]
            self._exited.pop(app, None)
        shutil.rmtree(self.run_dir / app, ignore_errors=True)
        cgroups.remove_app(app)
        await asyncio.to_thread(isolation.remove_user, app, self.home)

    async def shutdown(self) -> None:
        """The rack is stopping: leave the apps running (their shims keep them) and let go."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*list(self._background), return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.client.aclose()


def _silent(obj: str, message: str) -> None:
    return None


def _diagnosis(process: LocalProcess) -> ProcessDiagnosis:
    logs = tuple(
        path for path in (process.directory / "output.log.1", process.log_path) if path.exists()
    )
    return ProcessDiagnosis(
        id=process.id,
        service=process.service,
        release_id=process.release_id,
        status=process.status,
        started_at=process.started_at,
        command=process.command,
        port=process.port,
        healthy_at=process.healthy_at,
        health_problem=process.health_problem,
        exit_code=process.exit_code if not process.alive else None,
        exited_at=process.exited_at,
        stopped=process.expected_exit,
        oom_killed=process.oom_killed,
        memory_limit=process.cgroups.memory_mb if process.cgroups is not None else None,
        logs=logs,
    )
