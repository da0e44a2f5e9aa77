"""The automatic rollback: a watched release that breached its bounds is replaced by a copy
of the release before it, promoted like any rollback, by the rack itself."""

from __future__ import annotations

from shipmate.domain.actor import RACK, current_actor
from shipmate.domain.errors import ShipmateError
from shipmate.domain.traffic import Counts, WatchRule
from shipmate.services import releases, watch
from shipmate.services.context import Context
from shipmate.structs import Promotion


def watch_after(
    ctx: Context, promotion: Promotion, rule: WatchRule, baseline: Counts | None
) -> None:
    """Watch the release `promotion` made active; roll back when it breaches `rule`."""
    seen = watch.Watch(
        promotion.app,
        promotion.release_id,
        promotion.previous_release_id,
        promotion.id,
        rule,
        previous=baseline,
    )

    async def breach(reason: str) -> None:
        await roll_back(ctx, promotion, reason)

    ctx.watch_tasks[promotion.app] = ctx.spawn(watch.run_watch(ctx, seen, breach))


async def roll_back(ctx: Context, bad: Promotion, reason: str) -> None:
    """Promote a copy of the release before `bad`'s, described `auto-rollback: <reason>
    (<bad release>)`; the bad release's promotion says why. Said, not done, when something
    else has been promoted since or there is nothing to go back to."""
    token = current_actor.set(RACK)
    try:
        with ctx.store.unit_of_work() as uow:
            active = uow.apps.get(bad.app).release_id
        if active != bad.release_id or bad.previous_release_id is None:
            why = "no release before it" if active == bad.release_id else f"{active} is active"
            ctx.events.emit(bad.app, watch.OBJECT, f"Not rolling back: {why}", bad.id)
            return
        description = f"auto-rollback: {reason} ({bad.release_id})"
        started = releases.rollback(
            ctx,
            bad.app,
            bad.previous_release_id,
            None,
            kind="auto-rollback",
            description=description,
        )
        with ctx.store.unit_of_work() as uow:
            uow.promotions.set_reason(
                bad.id, f"watch failed: {reason}; rolled back by {started.release.id}"
            )
        ctx.events.emit(
            bad.app,
            watch.OBJECT,
            f"Rolling back to {bad.previous_release_id} as {started.release.id}",
            bad.id,
        )
    except ShipmateError as exc:
        ctx.events.emit(bad.app, watch.OBJECT, f"Could not roll back: {exc}", bad.id)
    finally:
        current_actor.reset(token)
