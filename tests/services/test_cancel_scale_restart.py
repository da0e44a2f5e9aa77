"""Cancel, scale and restart: promotions of the active release, or the end of one."""

from __future__ import annotations

import pytest

from shipmate.common.waiting import wait_for
from shipmate.domain.errors import InvalidInput, NotFound
from shipmate.domain.promotion import State
from shipmate.runtimes.base import Terminal
from shipmate.services import processes, releases
from tests.services.conftest import POLL, SUCCESS, Rack, manifest


async def test_cancel_stops_a_slow_promotion_and_reverts(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    [serving] = rack.fake.live("shop")
    r2 = rack.deploy("shop")
    rack.fake.script(r2.id, delay=30)
    started = releases.promote(rack.ctx, "shop", r2.id, None)
    await wait_for(lambda: rack.fake.live("shop", r2.id), 5, POLL, "r2's process to start")

    cancelled = await processes.cancel(rack.ctx, "shop")
    assert cancelled.id == started.promotion.id and cancelled.state is State.UPDATING
    promotion = await rack.finish(cancelled.id)

    assert rack.statuses(promotion.id) == [
        *SUCCESS[:2],
        "Status: Updating => Error",
        "Status: Error => Rollback",
        "Status: Rollback => Reverted",
    ]
    assert promotion.reason == "cancelled with `shipmate apps cancel`"
    app = rack.app("shop")
    assert (app.status, app.release_id) == ("running", r1.id)
    assert [p.id for p in rack.fake.live("shop")] == [serving.id]
    assert f"promotion.cancel {r2.id}" in rack.audit("shop")


async def test_cancel_without_a_promotion_is_refused(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    with pytest.raises(InvalidInput, match="app shop has no promotion in progress"):
        await processes.cancel(rack.ctx, "shop")


async def test_scale_is_a_rolling_promotion_recorded_once_it_succeeds(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)

    started = processes.scale(rack.ctx, "shop", "web", 3, None)
    assert started.release.id == r1.id and started.promotion.kind == "scale"
    promotion = await rack.finish(started.promotion.id)

    assert rack.statuses(promotion.id) == SUCCESS
    assert promotion.options == {"counts": {"web": 3}}
    live = rack.fake.live("shop")
    assert len(live) == 3 and {p.release_id for p in live} == {r1.id}
    assert f"Scaled up release {r1.id} to 3" in rack.messages("shop", promotion.id)
    table = await processes.scale_table(rack.ctx, "shop")
    assert [(s.service, s.desired, s.running) for s in table] == [("web", 3, 3)]
    assert rack.app("shop").release_id == r1.id

    # The formation outlives the release: the next one runs 3 too.
    r2 = rack.deploy("shop")
    await rack.promote("shop", r2.id)
    assert len(rack.fake.live("shop", r2.id)) == 3

    down = processes.scale(rack.ctx, "shop", "web", 1, None)
    await rack.finish(down.promotion.id)
    assert len(rack.fake.live("shop")) == 1
    assert [(s.desired, s.running) for s in await processes.scale_table(rack.ctx, "shop")] == [
        (1, 1)
    ]


async def test_a_scale_that_fails_changes_no_formation(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    rack.fake.script(r1.id, health="never")

    started = processes.scale(rack.ctx, "shop", "web", 4, None)
    promotion = await rack.finish(started.promotion.id)

    assert promotion.state is State.REVERTED
    assert rack.statuses(promotion.id)[-1] == "Status: Rollback => Reverted"
    assert rack.formation("shop") == {}
    assert [(s.desired, s.running) for s in await processes.scale_table(rack.ctx, "shop")] == [
        (1, 1)
    ]
    assert len(rack.fake.live("shop")) == 1


async def test_scale_refuses_bad_counts_and_unknown_services(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    with pytest.raises(InvalidInput, match="invalid count 101"):
        processes.scale(rack.ctx, "shop", "web", 101, None)
    with pytest.raises(NotFound, match="no service db in app shop: its services are web"):
        processes.scale(rack.ctx, "shop", "db", 2, None)
    assert len(rack.promotions("shop")) == 1


async def test_restart_replaces_every_process(rack: Rack) -> None:
    r1 = rack.deploy("shop", text=manifest(count=2, worker=True))
    await rack.promote("shop", r1.id)
    before = {p.id for p in rack.fake.live("shop")}

    started = processes.restart(rack.ctx, "shop", None, None)
    promotion = await rack.finish(started.promotion.id)

    assert promotion.kind == "restart"
    assert rack.statuses(promotion.id) == SUCCESS
    after = rack.fake.live("shop")
    assert len(after) == 3 and not before & {p.id for p in after}
    assert {p.release_id for p in after} == {r1.id}
    assert rack.app("shop").release_id == r1.id


async def test_restart_of_one_service_leaves_the_others(rack: Rack) -> None:
    r1 = rack.deploy("shop", text=manifest(worker=True))
    await rack.promote("shop", r1.id)
    [web] = [p for p in rack.fake.live("shop") if p.service == "web"]
    [worker] = [p for p in rack.fake.live("shop") if p.service == "worker"]

    started = processes.restart(rack.ctx, "shop", "worker", None)
    promotion = await rack.finish(started.promotion.id)

    assert promotion.options == {"restart": ["worker"]}
    live = {p.service: p.id for p in rack.fake.live("shop")}
    assert live["web"] == web.id and live["worker"] != worker.id
    assert "Started process (pid" in " ".join(rack.messages("shop", promotion.id))


async def test_ps_stop_replaces_the_process(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    [web] = rack.fake.live("shop")

    await processes.stop_process(rack.ctx, "shop", web.id)

    [replacement] = rack.fake.live("shop")
    assert replacement.id != web.id and replacement.release_id == r1.id
    listed = await processes.list_processes(rack.ctx, "shop")
    assert [p.id for p in listed] == [replacement.id]
    with pytest.raises(NotFound, match=f"no such process: {web.id}"):
        await processes.stop_process(rack.ctx, "shop", web.id)


async def test_run_streams_a_one_off_and_its_exit_code(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    rack.fake.script(r1.id, run_exit=7, run_output=("hello", "bye"))

    plan = processes.plan_run(rack.ctx, "shop", "web", "python3 -c 'print(1)'", None)
    output = [item async for item in processes.run(rack.ctx, plan)]

    assert output == [("line", "hello"), ("line", "bye"), ("exit", 7)]
    assert f"Running one-off process of {r1.id}: python3 -c 'print(1)'" in rack.messages("shop")


async def test_attach_starts_an_interactive_one_off_and_says_so(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    rack.fake.script(r1.id, run_exit=3)

    plan = processes.plan_run(rack.ctx, "shop", "web", "python3", None)
    session = await processes.attach(rack.ctx, plan, Terminal(24, 80))
    await session.write(b"print(6*7)\n")
    session.close_stdin()

    assert [await session.read(), await session.read()] == [b"print(6*7)\n", b""]
    assert await session.wait() == 3
    assert rack.fake.runs[-1] == (r1.id, "web", "python3")
    assert f"Running one-off process of {r1.id} (in a terminal): python3" in rack.messages("shop")
