"""The local runtime: app processes on this machine, rolled by health checks."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

from shipmate.builder.python import venv_bin
from shipmate.domain.ids import new_process_id, release_hash
from shipmate.router.routes import Routes
from shipmate.runtimes.base import (
    DesiredState,
    EventSink,
    ProcessInfo,
    RolloutFailed,
    ServiceSpec,
)
from shipmate.runtimes.local.health import ProcessExited, wait_healthy
from shipmate.runtimes.local.process import LocalProcess, free_port

# How long a stopping process may take to finish requests already routed to it.
DRAIN_TIMEOUT = 30.0


class LocalRuntime:
    name = "local"

    def __init__(self, home: Path, routes: Routes) -> None:
        self.logs_dir = home / "logs"
        self.routes = routes
        self._processes: dict[str, LocalProcess] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient()

    # observation
    async def processes(self, app: str) -> list[ProcessInfo]:
        return [p.info() for p in self._processes.values() if p.app == app]

    def _live(self, app: str, service: str | None = None) -> list[LocalProcess]:
        return [
            p
            for p in self._processes.values()
            if p.app == app
            and (service is None or p.service == service)
            and p.alive
            and p.status != "stopping"
        ]

    # desired state
    async def apply(self, desired: DesiredState, emit: EventSink) -> None:
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
        for process in self._live(desired.app):
            if process.service not in wanted:
                await self._begin_stop(process, 10.0, emit)

    async def _roll(
        self, desired: DesiredState, spec: ServiceSpec, emit: EventSink, deadline: float
    ) -> None:
        """A rolling update of one service, bounded by maximum and minimum."""
        count = spec.count
        surge = max(0, math.floor(count * spec.maximum / 100) - count)
        min_healthy = math.ceil(count * spec.minimum / 100)
        if surge == 0 and min_healthy >= count:
            surge = 1  # otherwise no step would be allowed
        if spec.port is not None:
            await self.routes.declare(desired.app, spec.name)
        live = self._live(desired.app, spec.name)
        new = [p for p in live if p.release_id == desired.release_id]
        old = [p for p in live if p.release_id != desired.release_id]
        routed = await self.routes.backends(desired.app, spec.name)
        healthy = {p.id for p in new if p.backend in routed}
        if spec.port is None:
            healthy = {p.id for p in new if p.status == "running"}
        pending: dict[asyncio.Future[None], LocalProcess] = {}
        for p in new:
            if p.id not in healthy:
                pending[self._watch(p, spec, emit)] = p
        while len(new) > count:  # scaling down within the same release
            await self._begin_stop(new.pop(), spec.termination_grace, emit)

        while True:
            starting = min(count - len(new), count + surge - len(new) - len(old))
            if starting > 0:
                emit(spec.name, f"Scaled up release {desired.release_id} to {len(new) + starting}")
                for process in await asyncio.gather(
                    *(self._start(desired, spec, emit) for _ in range(starting))
                ):
                    new.append(process)
                    pending[self._watch(process, spec, emit)] = process
            removable = len(healthy) + len(old) - min_healthy
            while old and (removable > 0 or count == 0):
                await self._begin_stop(old.pop(0), spec.termination_grace, emit)
                removable -= 1
            if not pending and not old:
                return
            if not pending:
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RolloutFailed("deadline", _deadline_reason(pending.values(), desired))
            done, _ = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for future in done:
                process = pending.pop(future)
                exc = future.exception()
                if isinstance(exc, ProcessExited):
                    for other in pending:
                        other.cancel()
                    raise RolloutFailed(
                        "error",
                        f"process {process.id} exited with code {process.exit_code} "
                        "before it became healthy",
                    )
                if exc is not None:
                    raise exc
                healthy.add(process.id)
                if spec.port is not None:
                    await self.routes.add_backend(desired.app, spec.name, process.backend)
                emit(process.id, "Healthy")

    def _watch(
        self, process: LocalProcess, spec: ServiceSpec, emit: EventSink
    ) -> asyncio.Future[None]:
        return asyncio.ensure_future(wait_healthy(process, spec.health, self._client, emit))

    async def _start(
        self, desired: DesiredState, spec: ServiceSpec, emit: EventSink
    ) -> LocalProcess:
        process_id = new_process_id(spec.name, desired.release_id)
        while process_id in self._processes:  # the random suffix is short
            process_id = new_process_id(spec.name, desired.release_id)
        process = LocalProcess(
            id=process_id,
            app=desired.app,
            service=spec.name,
            release_id=desired.release_id,
            command=spec.command,
            port=free_port() if spec.port is not None else None,
            log_path=self.logs_dir / desired.app / f"{process_id}.log",
        )
        self._processes[process.id] = process
        emit(f"{spec.name}-{release_hash(desired.release_id)}", f"Created process: {process.id}")
        await process.spawn(desired.directory, dict(spec.environment), venv_bin(desired.directory))
        where = f", port {process.port}" if process.port is not None else ""
        emit(process.id, f"Started process (pid {process.pid}{where})")
        asyncio.get_running_loop().create_task(self._observe_exit(process, emit))
        return process

    async def _observe_exit(self, process: LocalProcess, emit: EventSink) -> None:
        await process.exited.wait()
        if process.port is not None:
            await self.routes.remove_backend(process.app, process.service, process.backend)
        if not process.expected_exit:
            emit(process.id, f"Exited with code {process.exit_code}")

    async def _begin_stop(self, process: LocalProcess, grace: float, emit: EventSink) -> None:
        # Out of the router at once; SIGTERM only once requests in flight have finished.
        process.status = "stopping"
        process.expected_exit = True
        if process.port is not None:
            await self.routes.remove_backend(process.app, process.service, process.backend)
        emit(process.id, "Stopping")
        task = asyncio.ensure_future(self._stop(process, grace, emit))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop(self, process: LocalProcess, grace: float, emit: EventSink) -> None:
        if process.port is not None:
            await self.routes.wait_drained(process.backend, DRAIN_TIMEOUT)
        emit(process.id, await process.stop(grace))
        self._processes.pop(process.id, None)

    async def remove(self, app: str, emit: EventSink) -> None:
        await self.routes.remove_app(app)
        for process in self._live(app):
            await self._begin_stop(process, 10.0, emit)
        await self.wait_stopped()

    async def wait_stopped(self) -> None:
        while self._stopping:
            await asyncio.gather(*list(self._stopping), return_exceptions=True)

    async def shutdown(self) -> None:
        for process in list(self._processes.values()):
            if process.alive:
                await self._begin_stop(process, 10.0, lambda obj, msg: None)
        await self.wait_stopped()
        with contextlib.suppress(Exception):
            await self._client.aclose()


def _deadline_reason(waiting: Iterable[LocalProcess], desired: DesiredState) -> str:
    parts = []
    for process in sorted(waiting, key=lambda p: p.id):
        last = f" (last check: {process.health_problem})" if process.health_problem else ""
        parts.append(f"{process.id}{last}")
    return f"deadline exceeded: {', '.join(parts)} not healthy within {desired.deadline:g}s"
