"""Releases: list, inspect, promote and roll back."""

from __future__ import annotations

from dataclasses import dataclass

from shipmate.domain.errors import InvalidInput
from shipmate.services import promotions
from shipmate.services.context import Context
from shipmate.structs import Promotion, Release


@dataclass(frozen=True)
class Started:
    release: Release
    promotion: Promotion


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
        tx.get_app(app)
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
        tx.get_app(app)
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
        promotion = promotions.begin(ctx, tx, copy, "rollback", wait)
    promotions.start(ctx, promotion, wait)
    return Started(copy, promotion)
