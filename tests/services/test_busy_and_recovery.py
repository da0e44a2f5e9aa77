"""One promotion per app at a time, changes beside a running one, and a rack that died."""

from __future__ import annotations

import asyncio

import pytest

from shipmate.common.waiting import wait_for
from shipmate.domain.errors import AppBusy, Conflict
from shipmate.domain.promotion import State
from shipmate.services import apps, environment, promotions, releases
from tests.services.conftest import POLL, SUCCESS, Rack, manifest

RECOVERED = [
    "Status: Running => Pending",
    "Status: Pending => Updating",
    "Status: Updating => Error",
    "Status: Error => Rollback",
    "Status: Rollback => Reverted",
]


async def held_promotion(rack: Rack, app: str) -> tuple[str, str, str]:
    """A running promotion of a new release of `app` held before its processes are healthy;
    returns (active release, held release, promotion)."""
    r1 = rack.deploy(app)
    await rack.promote(app, r1.id)
    r2 = rack.deploy(app)
    rack.fake.script(r2.id, health="hold")
    started = releases.promote(rack.ctx, app, r2.id, None)
    await wait_for(lambda: rack.fake.live(app, r2.id), 5, POLL, "the held process to start")
    return r1.id, r2.id, started.promotion.id


async def test_a_second_promotion_of_a_busy_app_is_refused(rack: Rack) -> None:
    r1, r2, running = await held_promotion(rack, "shop")
    r3 = rack.deploy("shop")
    releases_before = len(releases.list_releases(rack.ctx, "shop", 100))

    with pytest.raises(AppBusy) as refused:
        releases.promote(rack.ctx, "shop", r3.id, None)
    assert str(refused.value) == f"app shop is updating (promotion of {r2} in progress)"
    assert (refused.value.app, refused.value.release_id) == ("shop", r2)
    with pytest.raises(AppBusy):
        releases.rollback(rack.ctx, "shop", r1, None)

    # Refusals write nothing: no promotion, no rollback copy.
    assert [p.id for p in rack.promotions("shop")][-1] == running
    assert len(releases.list_releases(rack.ctx, "shop", 100)) == releases_before
    assert rack.promotion(running).state is State.UPDATING

    rack.fake.proceed(r2)
    promotion = await rack.finish(running)
    assert rack.statuses(promotion.id) == SUCCESS
    assert rack.app("shop").release_id == r2


async def test_two_promotions_started_at_once_one_wins(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    r2, r3 = rack.deploy("shop"), rack.deploy("shop")
    rack.fake.script(r2.id, health="hold")
    rack.fake.script(r3.id, health="hold")

    async def attempt(release_id: str) -> str:
        await asyncio.sleep(0)
        return releases.promote(rack.ctx, "shop", release_id, None).promotion.id

    outcomes = await asyncio.gather(attempt(r2.id), attempt(r3.id), return_exceptions=True)

    won = [o for o in outcomes if isinstance(o, str)]
    lost = [o for o in outcomes if isinstance(o, AppBusy)]
    assert len(won) == 1 and len(lost) == 1
    winner = rack.promotion(won[0])
    rack.fake.proceed(winner.release_id)
    await rack.finish(winner.id)
    assert rack.app("shop").release_id == winner.release_id


async def test_when_idle_starts_once_the_running_promotion_ends(rack: Rack) -> None:
    _, r2, running = await held_promotion(rack, "shop")
    r3 = rack.deploy("shop")

    async def connected() -> bool:
        return False

    waiting = asyncio.ensure_future(
        releases.when_idle(
            rack.ctx, "shop", lambda: releases.promote(rack.ctx, "shop", r3.id, None), connected
        )
    )
    await asyncio.sleep(0.05)
    assert not waiting.done()

    rack.fake.proceed(r2)
    started = await waiting
    await rack.finish(running)
    promotion = await rack.finish(started.promotion.id)

    assert promotion.previous_release_id == r2
    assert rack.app("shop").release_id == r3.id


async def test_an_env_change_during_a_promotion_makes_a_release_and_disturbs_nothing(
    rack: Rack,
) -> None:
    _, r2, running = await held_promotion(rack, "shop")
    applied = len(rack.fake.applied)

    change = environment.change_env(rack.ctx, "shop", ["COLOR=red"], [])

    assert change.release is not None and change.env["COLOR"] == "red"
    assert change.release.description == "env add:COLOR"
    assert rack.promotion(running).state is State.UPDATING
    assert rack.app("shop").status == "updating"
    assert len(rack.fake.applied) == applied
    assert not rack.ctx.promotions[running].done()

    rack.fake.proceed(r2)
    promotion = await rack.finish(running)

    assert rack.statuses(promotion.id) == SUCCESS
    app = rack.app("shop")
    assert app.release_id == r2 and app.release_id != change.release.id
    assert "COLOR" not in rack.fake.applied[-1].services[0].environment
    assert releases.list_releases(rack.ctx, "shop", 1)[0].id == change.release.id


async def test_recover_reverts_a_promotion_the_rack_died_in(rack: Rack) -> None:
    r1, _, running = await held_promotion(rack, "shop")
    [serving] = rack.fake.live("shop", r1)
    other = rack.deploy("other")
    await rack.promote("other", other.id)
    [other_process] = rack.fake.live("other")

    # The rack dies mid-promotion: nothing of the promotion is written any more.
    task = rack.ctx.promotions[running]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert rack.promotion(running).finished_at is None
    restarted = rack.crash()

    await promotions.recover(restarted.ctx)

    promotion = restarted.promotion(running)
    assert promotion.state is State.REVERTED
    assert promotion.reason == "the rack stopped during the promotion"
    assert restarted.statuses(running) == RECOVERED
    app = restarted.app("shop")
    assert (app.status, app.release_id) == ("running", r1)
    # The previous release's process kept serving throughout: adopted, not replaced.
    assert [p.id for p in restarted.fake.live("shop")] == [serving.id]
    assert [p.id for p in restarted.fake.live("other")] == [other_process.id]
    messages = restarted.messages("shop")
    assert f"Adopted process (pid {serving.pid}) after a rack restart" in messages
    # The other app was made to run its active release, which it already did.
    assert restarted.fake.applied[-1].release_id in (r1, other.id)
    assert {d.release_id for d in restarted.fake.applied} == {r1, other.id}


async def test_recover_reverts_a_promotion_that_never_started(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    r2 = rack.deploy("shop")
    # The rack stopped between recording the promotion and starting it.
    with rack.ctx.store.unit_of_work() as uow:
        pending = promotions.begin(rack.ctx, uow, r2, "promote", None)
    restarted = rack.crash()

    await promotions.recover(restarted.ctx)

    promotion = restarted.promotion(pending.id)
    assert promotion.state is State.REVERTED
    assert restarted.statuses(pending.id) == [
        "Status: Running => Pending",
        "Status: Pending => Error",
        "Status: Error => Rollback",
        "Status: Rollback => Reverted",
    ]
    assert restarted.app("shop").release_id == r1.id
    assert {p.release_id for p in restarted.fake.live("shop")} == {r1.id}


async def test_an_app_is_deleted_only_between_promotions(rack: Rack) -> None:
    _, r2, running = await held_promotion(rack, "shop")
    with pytest.raises(Conflict, match=f"app shop is updating \\(promotion of {r2} in progress\\)"):
        await apps.delete_app(rack.ctx, "shop")
    assert rack.fake.live("shop")

    rack.fake.proceed(r2)
    await rack.finish(running)
    await apps.delete_app(rack.ctx, "shop")

    assert rack.fake.live("shop") == [] and "shop" not in rack.fake.desired
    assert [a.name for a in apps.list_apps(rack.ctx)] == []


async def test_recover_stops_the_release_command_before_reverting(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    r2 = rack.deploy("shop", text=manifest(release="sleep 30; touch marker"))
    rack.fake.script(r2.id, run_output=("migrating",), run_hold=True)
    started = releases.promote(rack.ctx, "shop", r2.id, None)
    running = started.promotion.id
    await wait_for(
        lambda: "migrating" in rack.messages("shop", running), 5, POLL, "the release command"
    )
    [command] = [p for p in rack.fake.table.values() if p.release_phase]
    restarted = rack.crash()

    await promotions.recover(restarted.ctx)

    promotion = restarted.promotion(running)
    assert promotion.state is State.REVERTED
    assert [p.id for p in restarted.fake.stopped] == [command.id]
    assert not [p for p in restarted.fake.table.values() if p.oneoff]
    messages = restarted.messages("shop", running)
    stopped = messages.index(f"Stopped the release command (pid {command.pid}) before the revert")
    assert messages[stopped + 1] == "Release command: Stopped (exit code 143)"
    assert stopped < messages.index("Status: Pending => Error")
    assert restarted.statuses(running) == [
        "Status: Running => Pending",
        "Status: Pending => Error",
        "Status: Error => Rollback",
        "Status: Rollback => Reverted",
    ]
    # Nothing of r2 ran: the revert kept r1's process, and r2's processes never started.
    assert {p.release_id for p in restarted.fake.live("shop")} == {r1.id}
