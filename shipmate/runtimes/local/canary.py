"""Canaries and traffic on this machine: a new release's processes beside the old ones,
sent a share of requests by the router's canary group, and what the router counted."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from shipmate.domain.traffic import Counts
from shipmate.runtimes.base import DesiredState, EventSink, RolloutFailed, ServiceSpec, Traffic
from shipmate.runtimes.local.health import ProcessExited, wait_healthy
from shipmate.runtimes.local.process import LocalProcess
from shipmate.runtimes.local.rolling import deadline_reason, exited_before_healthy

if TYPE_CHECKING:
    from shipmate.runtimes.local.runtime import LocalRuntime


def canary_count(spec: ServiceSpec, percent: int) -> int:
    """Processes a canary of `percent`% runs: that share of the count, at least one."""
    return max(1, -(-spec.count * percent // 100))


async def traffic(runtime: LocalRuntime, app: str) -> list[Traffic]:
    counters = await runtime.routes.counters()
    found = []
    for process in runtime.live(app):
        seen = counters.get(process.backend) if process.port is not None else None
        if seen is not None:
            classes, latency = seen
            found.append(Traffic(process.id, process.release_id, Counts(classes, latency)))
    return found


async def start(
    runtime: LocalRuntime, desired: DesiredState, percent: int, emit: EventSink
) -> None:
    deadline = time.monotonic() + desired.deadline
    routed = [spec for spec in desired.services if spec.port is not None]
    async with runtime.lock(desired.app):
        await asyncio.gather(
            *(_service(runtime, desired, spec, percent, emit, deadline) for spec in routed)
        )


async def _service(
    runtime: LocalRuntime,
    desired: DesiredState,
    spec: ServiceSpec,
    percent: int,
    emit: EventSink,
    deadline: float,
) -> None:
    count = canary_count(spec, percent)
    emit(spec.name, f"Scaled up release {desired.release_id} to {count} (canary)")
    started: list[LocalProcess] = list(
        await asyncio.gather(*(runtime.start(desired, spec, emit) for _ in range(count)))
    )
    checks = [wait_healthy(p, spec.health, runtime.client, emit) for p in started]
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            await asyncio.gather(*checks)
    except (ProcessExited, TimeoutError) as exc:
        for process in started:
            if process.alive:
                await runtime.begin_stop(process, spec.termination_grace, emit)
        if isinstance(exc, ProcessExited):
            raise exited_before_healthy(exc.process) from None
        raise RolloutFailed("deadline", deadline_reason(started, desired)) from None
    for process in started:
        emit(process.id, "Healthy")
    await runtime.routes.set_canary(desired.app, spec.name, [p.backend for p in started], percent)


async def end(runtime: LocalRuntime, app: str, keep: bool) -> None:
    services = {p.service for p in runtime.live(app) if p.port is not None}
    for service in sorted(services):
        await runtime.routes.end_canary(app, service, keep)
