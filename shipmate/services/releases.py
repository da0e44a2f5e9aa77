"""Releases: list, inspect, promote and roll back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from shipmate.domain.errors import AppBusy, Conflict, InvalidInput
from shipmate.services import audit, promotions
from shipmate.services.context import Context
from shipmate.store.repository import Tx
from shipmate.structs import Promotion, Release

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
            with ctx.store.transaction() as tx:
                tx.get_app(app)
                running = tx.running_promotion(app)
            if running is None:
                break
            if await is_disconnected():
                raise Conflict(f"gave up waiting for the promotion of {running.release_id}")
            await ctx.notifier.wait(1.0)


def list_releases(ctx: Context, app: str, limit: int) -> list[Release]:
    with ctx.store.transaction() as tx:
        tx.get_app(app)
        return tx.list_releases(app, limit)


def get_release(ctx: Context, app: str, release_id: str) -> tuple[Release, list[Promotion]]:
    with ctx.store.transaction() as tx:
        release = tx.get_release(app, release_id)
        return release, tx.promotions_of_release(release_id)


def promote(ctx: Context, app: str, release_id: str | None, wait: float | None) -> Started:
    with ctx.store.transaction() as tx:
        tx.lock_app(app)
        if release_id is None:
            release = tx.latest_release(app)
            if release is None:
                raise InvalidInput(f"app {app} has no release yet: run `shipmate deploy` first")
        else:
            release = tx.get_release(app, release_id)
        promotion = promotions.begin(ctx, tx, release, "promote", wait)
    promotions.start(ctx, promotion, wait)
    return Started(release, promotion)


def rollback(ctx: Context, app: str, target_id: str, wait: float | None) -> Started:
    """Copy the target release (build, environment, manifest, description) and promote it."""
    with ctx.store.transaction() as tx:
        tx.lock_app(app)
        target = tx.get_release(app, target_id)
        promotions.ensure_idle(tx, app)
        promotions.desired_state(ctx, target, wait)  # refuse before the copy is written
        copy = tx.create_release(
            app,
            target.build_id,
            dict(target.env),
            target.manifest,
            target.manifest_name,
            target.description,
            copied_from=target.id,
        )
        audit.record(tx, "release.rollback", app, copy.id, f"copy of {target.id}")
        warnings = _migration_warnings(tx, target)
        promotion = promotions.begin(ctx, tx, copy, "rollback", wait)
    promotions.start(ctx, promotion, wait)
    return Started(copy, promotion, warnings)


def _migration_warnings(tx: Tx, target: Release) -> tuple[str, ...]:
    """Rolling back does not undo what release commands did after the target (migrations)."""
    ran = [
        p.release_id
        for p in tx.release_commands_since(target.app, target.created_at)
        if p.release_id != target.id
    ]
    if not ran:
        return ()
    names = ", ".join(dict.fromkeys(ran))
    return (
        f"WARNING: release commands ran after {target.id} (in {names}); rolling back does not "
        "revert what they did, such as database migrations",
    )
