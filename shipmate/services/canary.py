"""Canary promotions: the new release serves a share of requests beside the old one until
the user continues (`releases promote --continue`) or aborts (`--abort`), or its watch fails.

The promotion's task waits in the Canary state on a future of `ctx.canary_decisions`:
`decide` resolves it with None (continue) or the reason of the abort. A rack that stops
during a canary reverts it on its next start, like any promotion it was in the middle of.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from shipmate.domain.actor import current_actor
from shipmate.domain.errors import Conflict, InvalidInput
from shipmate.domain.promotion import State
from shipmate.domain.traffic import WatchRule
from shipmate.services import audit, watch
from shipmate.services.context import Context
from shipmate.structs import Promotion

if TYPE_CHECKING:
    from shipmate.services.promotions import PromotionRun

ACTIONS = ("continue", "abort")


async def serve(
    run: PromotionRun, percent: int, rule: WatchRule | None, wait: float | None
) -> str | None:
    """Start the canary and wait for the decision: None to go on to 100%, else why not."""
    ctx, promotion = run.ctx, run.promotion
    app = promotion.app
    await ctx.runtime.canary(run.desired(wait), percent, run.emit)
    decision: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
    ctx.canary_decisions[promotion.id] = decision
    run.advance(State.CANARY)
    previous = run.previous.id if run.previous is not None else "nothing"
    run.emit(
        "atom/app",
        f"Canary: {promotion.release_id} serves {percent}% of requests beside {previous}; "
        f"`shipmate releases promote --continue -a {app}` completes it, `--abort` ends it",
    )
    watcher = None
    if rule is not None:
        seen = watch.Watch(
            app,
            promotion.release_id,
            run.previous.id if run.previous else None,
            promotion.id,
            rule,
            canary=True,
        )

        async def breach(reason: str) -> None:
            if not decision.done():
                decision.set_result(f"canary watch failed: {reason}")

        watcher = ctx.spawn(watch.run_watch(ctx, seen, breach))
    try:
        reason = await decision
    finally:
        ctx.canary_decisions.pop(promotion.id, None)
        if watcher is not None and not watcher.done():
            watcher.cancel()
    if reason is None:
        await ctx.runtime.end_canary(app, keep=True)
        run.advance(State.UPDATING)
    return reason


def decide(ctx: Context, app: str, action: str) -> tuple[Promotion, int]:
    """Continue or abort the app's canary: the promotion, and the id of its last event so far
    (to follow it from there)."""
    if action not in ACTIONS:
        raise InvalidInput(f"a canary is continued or aborted, not {action!r}")
    with ctx.store.unit_of_work() as uow:
        uow.apps.get(app)
        running = uow.promotions.running(app)
        if running is None or State(running.state) is not State.CANARY:
            raise InvalidInput(
                f"app {app} has no canary in progress: start one with "
                f"`shipmate releases promote R --canary 10 -a {app}`"
            )
        events = uow.events.list(app, after_id=0, promotion_id=running.id)
        audit.record(uow, f"promotion.canary.{action}", app, running.release_id, running.id)
    decision = ctx.canary_decisions.get(running.id)
    if decision is None or decision.done():
        raise Conflict(f"the canary of {running.release_id} is already ending: wait for it")
    actor = current_actor.get()
    decision.set_result(None if action == "continue" else f"canary aborted by {actor}")
    return running, max((e.id for e in events), default=0)


async def left_canary(ctx: Context, app: str, promotion_id: str, timeout: float = 10.0) -> None:
    """Wait until the promotion's task has taken the decision (its state is not Canary)."""
    async with asyncio.timeout(timeout):
        while True:
            with ctx.store.unit_of_work() as uow:
                promotion = uow.promotions.get(app, promotion_id)
            if State(promotion.state) is not State.CANARY:
                return
            await ctx.notifier.wait(0.2)
