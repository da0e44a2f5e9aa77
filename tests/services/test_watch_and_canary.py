"""Watched promotions and canaries, with the router's counts scripted on the fake runtime."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from shipmate.domain.errors import InvalidInput
from shipmate.domain.promotion import State
from shipmate.services import canary, releases, watch
from shipmate.structs import Promotion, Release
from tests.services.conftest import Rack, manifest


@pytest.fixture(autouse=True)
def quick_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "TICK", 0.005)


def watched(duration: int = 1, errors: int = 5, count: int = 2) -> str:
    rule = f"{{duration: {duration}, errors: {errors}, requests: 10}}"
    return manifest(count=count).replace(
        "    health: /health\n", f"    health: /health\n    deployment:\n      watch: {rule}\n"
    )


async def settle(rack: Rack, app: str) -> None:
    """Until the watch of the app's latest promotion is over and what it started is done."""
    for _ in range(400):
        w = watch.current(rack.ctx, app)
        if w is not None and w.verdict.over and not rack.ctx.promotions:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the watch did not end")


async def two_releases(rack: Rack, text: str, second: str | None = None) -> tuple[Release, Release]:
    r1 = rack.deploy("shop", text=text)
    await rack.promote("shop", r1.id)
    if "watch:" in text:
        await settle(rack, "shop")
    rack.fake.answer("shop", r1.id, ok=200)  # the previous release served well
    return r1, rack.deploy("shop", text=second or text)


async def test_a_release_that_fails_its_watch_is_rolled_back_by_the_rack(rack: Rack) -> None:
    r1, r2 = await two_releases(rack, watched())
    promotion = await rack.promote("shop", r2.id)
    assert promotion.state is State.RUNNING
    rack.fake.answer("shop", r2.id, ok=20, errors=20)
    await settle(rack, "shop")
    for task in list(rack.ctx.promotions.values()):
        await task

    copy = rack.app("shop").release_id
    assert copy not in (r1.id, r2.id)
    restored = rack.release("shop", copy)  # type: ignore[arg-type]
    assert restored.copied_from == r1.id and restored.env == r1.env
    assert restored.description.startswith("auto-rollback: 5xx 50% > 5% in ")
    assert restored.description.endswith(f" s ({r2.id})")
    last = rack.promotions("shop")[-1]
    assert (last.kind, last.state, last.created_by) == ("auto-rollback", State.RUNNING, "rack")
    why = rack.promotion(promotion.id).reason or ""
    assert why.startswith("watch failed: 5xx 50% > 5% in ") and why.endswith(f"by {copy}")
    assert {p.release_id for p in rack.fake.live("shop")} == {copy}
    messages = rack.messages("shop", promotion.id)
    assert any(m.startswith("Watch failed: 5xx 50% > 5% in ") for m in messages)
    assert "promotion.start " + str(copy) in rack.audit("shop")


async def test_a_good_release_passes_its_watch_and_stays(rack: Rack) -> None:
    _r1, r2 = await two_releases(rack, watched())
    promotion = await rack.promote("shop", r2.id)
    rack.fake.answer("shop", r2.id, ok=100, errors=1)
    await settle(rack, "shop")
    assert rack.app("shop").release_id == r2.id
    messages = rack.messages("shop", promotion.id)
    assert any(m.startswith("Watch passed: 101 requests, 5xx 1.0%") for m in messages)
    assert len(rack.promotions("shop")) == 2


async def test_too_little_traffic_is_said_not_guessed(rack: Rack) -> None:
    _r1, r2 = await two_releases(rack, watched())
    promotion = await rack.promote("shop", r2.id)
    rack.fake.answer("shop", r2.id, ok=1, errors=2)
    await settle(rack, "shop")
    assert rack.app("shop").release_id == r2.id
    ended = [m for m in rack.messages("shop", promotion.id) if m.startswith("Watch ended")]
    assert ended == [
        "Watch ended: too little traffic to judge (3 requests in 1 s, fewer than the 10 "
        "needed to judge)"
    ]


async def test_no_rollback_when_the_previous_release_was_as_bad(rack: Rack) -> None:
    r1, r2 = await two_releases(rack, watched())
    rack.fake.answer("shop", r1.id, ok=0, errors=200)
    promotion = await rack.promote("shop", r2.id)
    rack.fake.answer("shop", r2.id, ok=10, errors=10)
    await settle(rack, "shop")
    assert rack.app("shop").release_id == r2.id
    said = [m for m in rack.messages("shop", promotion.id) if "not rolling back" in m]
    assert len(said) == 1 and "the previous release did as badly" in said[0]


async def test_no_watch_skips_it(rack: Rack) -> None:
    _r1, r2 = await two_releases(rack, watched())
    started = releases.promote(rack.ctx, "shop", r2.id, None, watched=False)
    await rack.finish(started.promotion.id)
    assert not [m for m in rack.messages("shop", started.promotion.id) if "Watch" in m]


async def in_canary(rack: Rack, promotion_id: str) -> Promotion:
    for _ in range(400):
        found = rack.promotion(promotion_id)
        if found.state is State.CANARY or found.finished_at is not None:
            return found
        await asyncio.sleep(0.005)
    raise AssertionError("no canary")


async def test_a_canary_continued_completes_the_promotion(rack: Rack) -> None:
    r1, r2 = await two_releases(rack, manifest(count=4))
    started = releases.promote(rack.ctx, "shop", r2.id, None, canary=25)
    assert (await in_canary(rack, started.promotion.id)).state is State.CANARY
    assert rack.fake.canaries["shop"] == (r2.id, 25)
    assert Counter(p.release_id for p in rack.fake.live("shop")) == {r1.id: 4, r2.id: 1}
    assert rack.app("shop").release_id == r1.id

    canary.decide(rack.ctx, "shop", "continue")
    done = await rack.finish(started.promotion.id)

    assert done.state is State.RUNNING and rack.app("shop").release_id == r2.id
    assert done.history[-3:] == [State.CANARY, State.UPDATING, State.RUNNING]
    assert rack.fake.ended_canaries == [("shop", True)]
    assert {p.release_id for p in rack.fake.live("shop")} == {r2.id}


async def test_a_canary_aborted_puts_every_request_back(rack: Rack) -> None:
    r1, r2 = await two_releases(rack, manifest(count=2))
    started = releases.promote(rack.ctx, "shop", r2.id, None, canary=10)
    await in_canary(rack, started.promotion.id)

    canary.decide(rack.ctx, "shop", "abort")
    done = await rack.finish(started.promotion.id)

    assert done.state is State.REVERTED and done.reason == "canary aborted by system"
    assert rack.app("shop").release_id == r1.id
    assert rack.fake.ended_canaries[0] == ("shop", False)
    assert {p.release_id for p in rack.fake.live("shop")} == {r1.id}
    with pytest.raises(InvalidInput, match="has no canary in progress"):
        canary.decide(rack.ctx, "shop", "continue")


async def test_a_canary_that_fails_its_watch_is_aborted(rack: Rack) -> None:
    r1, r2 = await two_releases(rack, manifest(count=2), watched(duration=30))
    started = releases.promote(rack.ctx, "shop", r2.id, None, canary=50)
    await in_canary(rack, started.promotion.id)
    rack.fake.answer("shop", r1.id, ok=40)  # the old release, over the same window
    rack.fake.answer("shop", r2.id, ok=20, errors=20)

    done = await rack.finish(started.promotion.id)

    assert done.state is State.REVERTED
    assert (done.reason or "").startswith("canary watch failed: 5xx 50% > 5% in ")
    assert rack.app("shop").release_id == r1.id


async def test_a_canary_needs_an_active_release(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    with pytest.raises(InvalidInput, match="no active release for a canary"):
        releases.promote(rack.ctx, "shop", r1.id, None, canary=10)
    assert rack.promotions("shop") == []


async def test_a_new_promotion_stops_the_watch_of_the_one_before(rack: Rack) -> None:
    _r1, r2 = await two_releases(rack, manifest(count=2), watched(duration=30))
    first = await rack.promote("shop", r2.id)
    r3 = rack.deploy("shop", text=watched(duration=30))
    await rack.promote("shop", r3.id)
    await asyncio.sleep(0.05)
    stopped = [m for m in rack.messages("shop", first.id) if m.startswith("Watch stopped")]
    assert len(stopped) == 1 and stopped[0].startswith("Watch stopped: a new promotion began")
    assert watch.current(rack.ctx, "shop").release_id == r3.id  # type: ignore[union-attr]
    watch.stop_watch(rack.ctx, "shop")
