"""Releases: list, inspect, promote and roll back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from shipmate.domain.errors import AppBusy, Conflict, InvalidInput
from shipmate.domain.promotion import State, release_status
from shipmate.services import audit, promotions, retention
from shipmate.services.apps import ensure_changeable
from shipmate.services.context import Context
from shipmate.services.ports import UnitOfWork
from shipmate.structs import Event, Promotion, Release

T = TypeVar("T")


@dataclass(frozen=True)
class Started:
    release: Release
    promotion: Promotion
    warnings: tuple[str, ...] = ()


async def when_idle(
    ctx: Context,
    app: str,
    attempt: Callable[[], T],
    is_disconnected: Callable[[], Awaitable[bool]],
) -> T:
    """`attempt()` (a promote or a rollback) as soon as no other promotion of `app` runs.

    The attempt itself checks and starts in one locked transaction; waiting only decides when
    to try again, so two waiters never both start: the loser waits for the winner.
    """
    while True:
        try:
            return attempt()
        except AppBusy:
            pass
        while True:
            with ctx.store.unit_of_work() as uow:
                uow.apps.get(app)
                running = uow.promotions.running(app)
            if running is None:
                break
            if await is_disconnected():
                raise Conflict(f"gave up waiting for the promotion of {running.release_id}")
            await ctx.notifier.wait(1.0)


def list_releases(ctx: Context, app: str, limit: int) -> list[Release]:
    with ctx.store.unit_of_work() as uow:
        uow.apps.get(app)
        return uow.releases.list(app, limit)


def statuses(ctx: Context, app: str, listed: Sequence[Release]) -> dict[str, str]:
    """Each release's STATUS: `active`, `reverted` (its last promotion was reverted) or ""."""
    with ctx.store.unit_of_work() as uow:
        active = uow.apps.get(app).release_id
        # One query for the whole listing, not one per release.
        last = uow.promotions.last_of_releases([r.id for r in listed])
    return {
        r.id: release_status(r.id == active, [last[r.id]] if r.id in last else []) for r in listed
    }


def get_release(ctx: Context, app: str, release_id: str) -> tuple[Release, list[Promotion]]:
    with ctx.store.unit_of_work() as uow:
        release = uow.releases.get(app, release_id)
        return release, uow.promotions.of_release(release_id)


def create_from_parts(
    ctx: Context, app: str, build_from: str | None, env_from: str | None
) -> Release:
    """A release with the build (and manifest) of `build_from` and the environment of
    `env_from`, each the latest release when not given: a fix's build with an older
    environment, or the other way round."""
    if build_from is None and env_from is None:
        raise InvalidInput("name the release to take the build from, the environment, or both")
    with ctx.store.unit_of_work() as uow:
        ensure_changeable(uow.apps.lock(app))
        latest = uow.releases.latest(app)
        if latest is None:
            raise InvalidInput(f"app {app} has no release yet: deploy first")
        build = uow.releases.get(app, build_from) if build_from else latest
        retention.ensure_build_kept(uow, build)
        env = uow.releases.get(app, env_from) if env_from else latest
        description = f"build {build.build_id} of {build.id}, env of {env.id}"
        release = uow.releases.add(
            app, build.build_id, dict(env.env), build.manifest, build.manifest_name, description
        )
        audit.record(uow, "release.create", app, release.id, description)
    return release


def get_promotion(ctx: Context, app: str, promotion_id: str) -> Promotion:
    with ctx.store.unit_of_work() as uow:
        return uow.promotions.get(app, promotion_id)


async def follow_promotion(
    ctx: Context,
    app: str,
    promotion_id: str,
    is_disconnected: Callable[[], Awaitable[bool]],
    after: int = 0,
) -> AsyncIterator[Event | Promotion]:
    """The promotion's events (after event `after`) as they are written, then the promotion
    once it has finished or is a canary waiting for its decision.

    Ends early (without the promotion) when `is_disconnected()` says the reader has gone.
    """
    last = after
    while True:
        with ctx.store.unit_of_work() as uow:
            promotion = uow.promotions.get(app, promotion_id)
            events = uow.events.list(app, after_id=last, promotion_id=promotion_id)
        for event in events:
            last = event.id
            yield event
        waiting = promotion.finished_at is not None or promotion.state == State.CANARY
        if waiting and not events:
            yield promotion
            return
        if await is_disconnected():
            return
        if not events:
            await ctx.notifier.wait(0.5)


def promote(
    ctx: Context,
    app: str,
    release_id: str | None,
    wait: float | None,
    *,
    canary: int | None = None,
    watched: bool = True,
) -> Started:
    """Promote the release (the latest when None); `canary`: first send it that % of
    requests beside the active release; `watched=False`: skip the manifest's watch."""
    options = _options(canary, watched)
    with ctx.store.unit_of_work() as uow:
        uow.apps.lock(app)
        if release_id is None:
            release = uow.releases.latest(app)
            if release is None:
                raise InvalidInput(f"app {app} has no release yet: run `shipmate deploy` first")
        else:
            release = uow.releases.get(app, release_id)
        retention.ensure_build_kept(uow, release)
        if canary is not None:
            _check_canary(ctx, uow, release)
        promotion = promotions.begin(ctx, uow, release, "promote", wait, options)
    promotions.start(ctx, promotion, wait)
    return Started(release, promotion)


def rollback(
    ctx: Context,
    app: str,
    target_id: str,
    wait: float | None,
    *,
    kind: str = "rollback",
    description: str | None = None,
    watched: bool = True,
) -> Started:
    """Copy the target release (build, environment, manifest, description) and promote it.

    An automatic rollback (kind `auto-rollback`) describes the copy by why it was made."""
    with ctx.store.unit_of_work() as uow:
        uow.apps.lock(app)
        target = uow.releases.get(app, target_id)
        promotions.ensure_idle(uow, app)
        retention.ensure_build_kept(uow, target)  # refuse before the copy is written
        promotions.desired_state(ctx, target, wait)
        copy = uow.releases.add(
            app,
            target.build_id,
            dict(target.env),
            target.manifest,
            target.manifest_name,
            description if description is not None else target.description,
            copied_from=target.id,
        )
        audit.record(uow, f"release.{kind}", app, copy.id, f"copy of {target.id}")
        warnings = _migration_warnings(uow, target)
        promotion = promotions.begin(ctx, uow, copy, kind, wait, _options(None, watched))
    promotions.start(ctx, promotion, wait)
    return Started(copy, promotion, warnings)


def _options(canary: int | None, watched: bool) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if canary is not None:
        if not 1 <= canary <= 99:
            raise InvalidInput(f"--canary is a % of requests from 1 to 99, got {canary}")
        options["canary"] = canary
    if not watched:
        options["watch"] = False
    return options


def _check_canary(ctx: Context, uow: UnitOfWork, release: Release) -> None:
    app = uow.apps.get(release.app)
    if app.release_id is None:
        raise InvalidInput(
            f"app {app.name} has no active release for a canary to run beside: "
            "promote without --canary"
        )
    if app.release_id == release.id:
        raise InvalidInput(f"{release.id} is already active: a canary needs another release")
    if not any(s.port is not None for s in promotions.manifest_of(release).services):
        raise InvalidInput(
            f"release {release.id} has no routed service (no `port:`): a canary is a share "
            "of requests, promote without --canary"
        )


def _migration_warnings(uow: UnitOfWork, target: Release) -> tuple[str, ...]:
    """Rolling back does not undo what release commands did after the target (migrations)."""
    ran = [
        p.release_id
        for p in uow.promotions.release_commands_since(target.app, target.created_at)
        if p.release_id != target.id
    ]
    if not ran:
        return ()
    names = ", ".join(dict.fromkeys(ran))
    return (
        f"WARNING: release commands ran after {target.id} (in {names}); rolling back does not "
        "revert what they did, such as database migrations",
    )
