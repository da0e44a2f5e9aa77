"""Processes of the active release: list, stop, scale, restart, run one-offs, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from shipmate.domain.errors import InvalidInput, NotFound
from shipmate.domain.promotion import State
from shipmate.runtimes.base import Attached, DesiredState, ProcessInfo, Terminal
from shipmate.services import audit, promotions
from shipmate.services.apps import ensure_changeable
from shipmate.services.context import Context
from shipmate.services.ports import UnitOfWork
from shipmate.services.releases import Started
from shipmate.structs import Promotion, Release

MAX_COUNT = 100


@dataclass(frozen=True)
class ServiceScale:
    service: str
    desired: int
    running: int


def _active_in(uow: UnitOfWork, app: str) -> Release:
    found = uow.apps.get(app)
    if found.release_id is None:
        raise InvalidInput(f"app {app} has no active release: run `shipmate deploy` first")
    return uow.releases.get(app, found.release_id)


def _active(ctx: Context, app: str) -> Release:
    with ctx.store.unit_of_work() as uow:
        return _active_in(uow, app)


async def list_processes(ctx: Context, app: str) -> list[ProcessInfo]:
    with ctx.store.unit_of_work() as uow:
        uow.apps.get(app)
    found = await ctx.runtime.processes(app)
    return sorted(found, key=lambda p: (p.service, p.started_at))


async def stop_process(ctx: Context, app: str, process_id: str) -> None:
    with ctx.store.unit_of_work() as uow:
        ensure_changeable(uow.apps.get(app))

    def emit(obj: str, message: str) -> None:
        ctx.events.emit(app, obj, message)

    await ctx.runtime.stop_process(app, process_id, emit)
    audit.log(ctx, "process.stop", app, process_id)


async def scale_table(ctx: Context, app: str) -> list[ServiceScale]:
    release = _active(ctx, app)
    desired = promotions.desired_state(ctx, release, counts=promotions.formation(ctx, app))
    running = await ctx.runtime.processes(app)
    return [
        ServiceScale(
            s.name,
            s.count,
            sum(1 for p in running if p.service == s.name and p.status == "running"),
        )
        for s in desired.services
    ]


def scale(ctx: Context, app: str, service: str, count: int, wait: float | None) -> Started:
    """A rolling change of one service's process count, as a promotion of the active release."""
    if not 0 <= count <= MAX_COUNT:
        raise InvalidInput(f"invalid count {count}: use 0 to {MAX_COUNT}")
    with ctx.store.unit_of_work() as uow:
        release = _release_with_service(uow, app, service)
        promotion = promotions.begin(
            ctx, uow, release, "scale", wait, options={"counts": {service: count}}
        )
    promotions.start(ctx, promotion, wait)
    return Started(release, promotion)


def restart(ctx: Context, app: str, service: str | None, wait: float | None) -> Started:
    """Replace every process (of one service, or all) with a rolling update."""
    with ctx.store.unit_of_work() as uow:
        if service is None:
            release = _active_in(uow, app)
            options: dict[str, object] = {}
        else:
            release = _release_with_service(uow, app, service)
            options = {"restart": [service]}
        promotion = promotions.begin(ctx, uow, release, "restart", wait, options=options)
    promotions.start(ctx, promotion, wait)
    return Started(release, promotion)


def _release_with_service(uow: UnitOfWork, app: str, service: str) -> Release:
    release = _active_in(uow, app)
    names = [s.name for s in promotions.manifest_of(release).services]
    if service not in names:
        raise NotFound(f"no service {service} in app {app}: its services are {', '.join(names)}")
    return release


@dataclass(frozen=True)
class RunPlan:
    app: str
    service: str
    command: str
    desired: DesiredState


def plan_run(ctx: Context, app: str, service: str, command: str, release_id: str | None) -> RunPlan:
    """Check a one-off before anything starts: the release (default: the active one) and
    the service must exist."""
    if not command.strip():
        raise InvalidInput("no command given: shipmate run SERVICE COMMAND")
    with ctx.store.unit_of_work() as uow:
        ensure_changeable(uow.apps.get(app))
        release = _active_in(uow, app) if release_id is None else uow.releases.get(app, release_id)
    desired = promotions.desired_state(ctx, release)
    if service not in {s.name for s in desired.services}:
        names = ", ".join(s.name for s in desired.services)
        raise NotFound(f"no service {service} in release {release.id}: its services are {names}")
    return RunPlan(app, service, command, desired)


async def run(ctx: Context, plan: RunPlan) -> AsyncIterator[tuple[str, str | int]]:
    """A one-off process with the release's build and environment: its output, then its code."""
    ctx.events.emit(
        plan.app,
        plan.service,
        f"Running one-off process of {plan.desired.release_id}: {plan.command}",
    )
    audit.log(ctx, "run", plan.app, plan.desired.release_id, f"{plan.service}: {plan.command}")
    async for item in ctx.runtime.run(plan.desired, plan.service, plan.command):
        yield item


async def attach(ctx: Context, plan: RunPlan, terminal: Terminal | None) -> Attached:
    """An interactive one-off (`shipmate run` with its input, and a terminal when it has one)."""
    how = "in a terminal" if terminal is not None else "interactive"
    ctx.events.emit(
        plan.app,
        plan.service,
        f"Running one-off process of {plan.desired.release_id} ({how}): {plan.command}",
    )
    audit.log(ctx, "run", plan.app, plan.desired.release_id, f"{plan.service}: {plan.command}")
    return await ctx.runtime.attach(plan.desired, plan.service, plan.command, terminal)


async def cancel(ctx: Context, app: str) -> Promotion:
    """Stop the app's promotion in progress and put the previous release back."""
    with ctx.store.unit_of_work() as uow:
        uow.apps.get(app)
        running = uow.promotions.running(app)
    if running is None:
        raise InvalidInput(f"app {app} has no promotion in progress: nothing to cancel")
    if State(running.state) not in (State.PENDING, State.UPDATING, State.CANARY):
        raise InvalidInput(
            f"the promotion of {running.release_id} is already reverting ({running.state})"
        )
    task = ctx.promotions.get(running.id)
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    with ctx.store.unit_of_work() as uow:
        promotion = uow.promotions.get(app, running.id)
        audit.record(uow, "promotion.cancel", app, promotion.release_id, promotion.id)
        release = uow.releases.get(app, promotion.release_id)
        previous = (
            uow.releases.get(app, promotion.previous_release_id)
            if promotion.previous_release_id
            else None
        )
    work = promotions.PromotionRun(ctx, promotion, release, previous)
    ctx.spawn(work.revert(State.ERROR, "cancelled with `shipmate apps cancel`"))
    return promotion
