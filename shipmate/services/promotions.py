"""Promotions: make a release active with a rolling update, or revert to the previous one.

A promotion is a row written (with its first event) before anything starts, so a rack that
stops mid-way finds it on the next start and reverts it (see `recover`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shipmate.domain import manifest_commands
from shipmate.domain.errors import AppBusy, InvalidInput
from shipmate.domain.ids import release_hash
from shipmate.domain.images import image_ref
from shipmate.domain.manifest import Manifest, load_manifest
from shipmate.domain.promotion import State, revert_failed, transition
from shipmate.domain.traffic import Counts, WatchRule
from shipmate.runtimes.base import (
    DesiredState,
    EventSink,
    HealthCheck,
    RolloutFailed,
    ServiceSpec,
)
from shipmate.services import audit, autorollback, canary, domains, watch
from shipmate.services.apps import ensure_changeable, finish_deletes
from shipmate.services.context import Context
from shipmate.services.ports import UnitOfWork
from shipmate.structs import Promotion, Release

APP_OBJECT = "atom/app"
# The kinds of promotion that put a release out, watched when the manifest says so.
WATCHED = ("promote", "rollback")


def manifest_of(release: Release) -> Manifest:
    if release.manifest is None:
        raise InvalidInput(f"release {release.id} has no build: run `shipmate build` first")
    return load_manifest(release.manifest, release.manifest_name or "shipmate.yml")


def desired_state(
    ctx: Context,
    release: Release,
    wait: float | None = None,
    counts: Mapping[str, int] | None = None,
    restart_before: datetime | None = None,
    restart_services: tuple[str, ...] = (),
) -> DesiredState:
    """The processes `release` needs; raises before anything runs when it cannot be run.

    `counts` (the app's formation) overrides the manifest's `scale.count` per service.
    """
    counts = counts or {}
    manifest = manifest_of(release)
    if release.build_id is None:
        raise InvalidInput(f"release {release.id} has no build: run `shipmate build` first")
    missing = manifest.missing_env(release.env)
    if missing:
        raise InvalidInput(f"required env: {', '.join(missing)}")
    services = []
    commands = manifest_commands.commands(manifest, ctx.settings.builds_dir / release.build_id)
    registry = ctx.settings.registry if ctx.settings.runtime != "local" else None
    for service in manifest.services:
        if registry is not None and service.name not in commands:
            # An image of a Dockerfile runs its own CMD (the build checked there is one).
            commands[service.name] = ""
        if service.name not in commands:
            raise InvalidInput(
                f"service {service.name} has no command: add `command:` to its manifest entry"
            )
        env = manifest.process_env(service.name, release.env)
        env.update(
            APP=release.app, SERVICE=service.name, RELEASE=release.id, BUILD=release.build_id
        )
        health = service.health
        services.append(
            ServiceSpec(
                name=service.name,
                command=commands[service.name],
                port=service.port,
                health=HealthCheck(health.path, health.grace, health.interval, health.timeout),
                count=counts.get(service.name, service.count),
                minimum=service.minimum,
                maximum=service.maximum,
                termination_grace=service.termination_grace,
                environment=env,
                build=service.build,
                memory=service.memory,
                cpu=service.cpu,
                image=image_ref(registry, release.app, service.name, release.build_id)
                if registry is not None
                else "",
            )
        )
    return DesiredState(
        app=release.app,
        release_id=release.id,
        build_id=release.build_id,
        directory=ctx.settings.builds_dir / release.build_id,
        services=tuple(services),
        deadline=wait if wait is not None else manifest.deadline(),
        restart_before=restart_before,
        restart_services=restart_services,
    )


def formation(ctx: Context, app: str) -> dict[str, int]:
    with ctx.store.unit_of_work() as uow:
        return uow.formation.get(app)


def ensure_idle(uow: UnitOfWork, app: str) -> None:
    running = uow.promotions.running(app)
    if running is not None:
        raise AppBusy(app, running.release_id)


def begin(
    ctx: Context,
    uow: UnitOfWork,
    release: Release,
    kind: str,
    wait: float | None,
    options: dict[str, Any] | None = None,
) -> Promotion:
    """Validate and record a promotion inside the caller's transaction.

    Everything that can refuse the promotion runs before the first write, so a refusal
    changes nothing.
    """
    app = ensure_changeable(uow.apps.lock(release.app))
    ensure_idle(uow, app.name)
    desired_state(ctx, release, wait)
    domains.check_release(uow, release)  # its `domain:` names: expandable, and no one else's
    if app.release_id is not None:
        # The revert target must be runnable too, or a failed promotion could not revert.
        uow.releases.get(app.name, app.release_id)
    promotion = uow.promotions.add(
        app.name, release.id, app.release_id, kind, state=State.PENDING, options=options
    )
    audit.record(uow, "promotion.start", app.name, release.id, _audit_detail(promotion))
    uow.apps.update(app.name, status=promotion.app_status)
    uow.events.add(
        app.name,
        ctx.runtime.name,
        APP_OBJECT,
        transition(State.RUNNING, State.PENDING),
        promotion.id,
    )
    return promotion


def start(ctx: Context, promotion: Promotion, wait: float | None) -> None:
    watch.stop_watch(ctx, promotion.app)
    ctx.notifier.notify()
    task = ctx.spawn(run(ctx, promotion.id, wait))
    ctx.promotions[promotion.id] = task
    task.add_done_callback(lambda _: ctx.promotions.pop(promotion.id, None))


async def run(ctx: Context, promotion_id: str, wait: float | None = None) -> None:
    with ctx.store.unit_of_work() as uow:
        promotion = uow.promotions.get_by_id(promotion_id)
        release = uow.releases.get(promotion.app, promotion.release_id)
        previous = (
            uow.releases.get(promotion.app, promotion.previous_release_id)
            if promotion.previous_release_id
            else None
        )
    await PromotionRun(ctx, promotion, release, previous).execute(wait)


class PromotionRun:
    """The loop that drives one promotion. The domain's Promotion says which transitions are
    allowed and what each implies (the app's status, whether its release is now active,
    whether it is over); this writes each one (promotion row, app row, event and audit entry,
    in one unit of work) before taking the next step."""

    def __init__(
        self, ctx: Context, promotion: Promotion, release: Release, previous: Release | None
    ) -> None:
        self.ctx = ctx
        self.promotion = promotion
        self.release = release
        self.previous = previous

    def emit(self, obj: str, message: str) -> None:
        self.ctx.events.emit(self.promotion.app, obj, message, self.promotion.id)

    def advance(self, new: State, reason: str | None = None) -> None:
        before = self.promotion
        after = before.advance(new, reason)
        app = after.app
        with self.ctx.store.unit_of_work() as uow:
            uow.promotions.update(after.id, after.state, reason, after.finished_at)
            activated = after.release_id if after.succeeded else None
            if activated and after.options.get("counts"):
                uow.formation.set(app, after.options["counts"])
            uow.apps.update(app, status=after.app_status, release_id=activated)
            message = transition(before.state, after.state)
            uow.events.add(app, self.ctx.runtime.name, APP_OBJECT, message, after.id)
            if after.outcome is not None:
                detail = _audit_detail(after)
                if reason:
                    detail = f"{detail}: {reason}"
                audit.record(uow, f"promotion.{after.outcome}", app, after.release_id, detail)
        self.ctx.notifier.notify()
        self.promotion = after

    def desired(self, wait: float | None = None) -> DesiredState:
        counts = formation(self.ctx, self.promotion.app)
        counts.update(self.promotion.options.get("counts", {}))
        restart = self.promotion.created_at if self.promotion.kind == "restart" else None
        services = tuple(self.promotion.options.get("restart", ()))
        return desired_state(self.ctx, self.release, wait, counts, restart, services)

    def watch_rule(self) -> WatchRule | None:
        """The manifest's watch, for the promotions that put a new release out (not for an
        automatic rollback, nor when the user said `--no-watch`)."""
        if self.promotion.kind not in WATCHED or self.promotion.options.get("watch") is False:
            return None
        return manifest_of(self.release).watch()

    async def execute(self, wait: float | None) -> None:
        rule = self.watch_rule()
        baseline: Counts | None = None
        try:
            if rule is not None and self.previous is not None:
                traffic = await self.ctx.runtime.traffic(self.promotion.app)
                baseline = watch.release_counts(traffic, self.previous.id)
            if self.promotion.state is State.PENDING:
                if self.promotion.kind in ("promote", "rollback"):
                    failure = await self.release_phase()
                    if failure:
                        await self.revert(State.ERROR, failure)
                        return
                self.advance(State.UPDATING)
            percent = self.promotion.options.get("canary")
            if percent:
                aborted = await canary.serve(self, int(percent), rule, wait)
                if aborted is not None:
                    await self.revert(State.ERROR, aborted)
                    return
                rule = None  # watched while it was a canary
            await self.ctx.runtime.apply(self.desired(wait), self.emit)
        except RolloutFailed as failure:
            failed = State.DEADLINE if failure.kind == "deadline" else State.ERROR
            await self.revert(failed, failure.reason)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the runtime itself broke: still put the old release back
            await self.revert(State.ERROR, str(exc) or type(exc).__name__)
            return
        self.advance(State.RUNNING)
        if rule is not None:
            autorollback.watch_after(self.ctx, self.promotion, rule, baseline)

    async def release_phase(self) -> str | None:
        """Run the manifest's `release:` command once, before any process is replaced.

        Returns why it failed, or None.
        """
        command = manifest_of(self.release).release
        if not command:
            return None
        with self.ctx.store.unit_of_work() as uow:
            uow.promotions.record_release_command(self.promotion.id, command)
        desired = desired_state(self.ctx, self.release)
        obj = f"release-{release_hash(self.release.id)}"
        self.emit(obj, f"Running release command: {command}")
        code: int | str = 1
        service = desired.services[0].name
        async for kind, value in self.ctx.runtime.run(
            desired, service, command, release_phase=True
        ):
            if kind == "line":
                self.emit(obj, str(value))
            else:
                code = value
        if code != 0:
            return f"release command failed with exit code {code}: nothing was replaced"
        self.emit(obj, "Release command finished (exit code 0)")
        return None

    async def stop_release_command(self) -> None:
        """Before a promotion the rack stopped in is reverted: if it was in its release phase
        (the command's shim kept it running), stop the command, so that it does not finish,
        unreported, against a release that is no longer being promoted."""
        if self.promotion.state is not State.PENDING or not self.promotion.release_command:
            return
        obj = f"release-{release_hash(self.release.id)}"
        stopped = await self.ctx.runtime.stop_release_commands(self.promotion.app)
        for process, outcome in stopped:
            self.emit(obj, f"Stopped the release command (pid {process.pid}) before the revert")
            self.emit(obj, f"Release command: {outcome}")
        if not stopped:
            self.emit(
                obj,
                "The release command is no longer running: it may have finished while the "
                "rack was stopped, and what it did is not reverted",
            )

    async def revert(self, failed: State, reason: str) -> None:
        """Put the previous release back after the promotion failed with `failed`."""
        for state in self.promotion.rollback_path(failed):
            self.advance(state, reason if state is failed else None)
        try:
            if self.promotion.options.get("canary"):
                # Every request back to the old processes at once; the apply stops the rest.
                await self.ctx.runtime.end_canary(self.promotion.app, keep=False)
            if self.previous is None:
                desired = DesiredState.nothing(self.promotion.app)
            else:
                counts = formation(self.ctx, self.promotion.app)
                desired = desired_state(self.ctx, self.previous, counts=counts)
            await self.ctx.runtime.apply(desired, self.emit)
        except Exception as exc:
            self.advance(State.FAILURE, reason=revert_failed(reason, str(exc)))
            return
        self.advance(State.REVERTED)


def _audit_detail(promotion: Promotion) -> str:
    words = [promotion.kind, promotion.id]
    options = promotion.options
    words += [f"{service}={count}" for service, count in options.get("counts", {}).items()]
    words += list(options.get("restart", ()))
    return " ".join(words)


async def recover(ctx: Context) -> None:
    """After a restart: adopt the processes that kept running, revert promotions the rack was
    in the middle of, then make sure every app runs its active release.

    An unfinished promotion is reverted rather than resumed: its success was never reported,
    and the processes of the previous release are still serving, so reverting keeps them.
    """
    for process in await ctx.runtime.adopt():
        ctx.events.emit(
            process.app, process.id, f"Adopted process (pid {process.pid}) after a rack restart"
        )
    await finish_deletes(ctx)  # deletes the rack stopped during: their apps are gone now
    with ctx.store.unit_of_work() as uow:
        unfinished = uow.promotions.unfinished()
        apps = uow.apps.list()
    for promotion in unfinished:
        with ctx.store.unit_of_work() as uow:
            release = uow.releases.get(promotion.app, promotion.release_id)
            previous = (
                uow.releases.get(promotion.app, promotion.previous_release_id)
                if promotion.previous_release_id
                else None
            )
        run = PromotionRun(ctx, promotion, release, previous)
        await run.stop_release_command()
        await run.revert(State.ERROR, "the rack stopped during the promotion")
    reverted = {p.app for p in unfinished}
    for app in apps:
        if app.release_id is None or app.name in reverted:
            continue
        with ctx.store.unit_of_work() as uow:
            release = uow.releases.get(app.name, app.release_id)
        emit = _app_emitter(ctx, app.name)
        try:
            counts = formation(ctx, app.name)
            await ctx.runtime.apply(desired_state(ctx, release, counts=counts), emit)
        except Exception as exc:
            emit(APP_OBJECT, f"Could not start release {release.id}: {exc}")


def _app_emitter(ctx: Context, app: str) -> EventSink:
    def emit(obj: str, message: str) -> None:
        ctx.events.emit(app, obj, message)

    return emit
