"""Promote and roll back: the happy paths, as the API starts them."""

from __future__ import annotations

from shipmate.domain.errors import InvalidInput
from shipmate.domain.promotion import State
from shipmate.services import releases
from tests.services.conftest import SUCCESS, Rack, manifest


async def test_first_promote_makes_the_release_active(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    started = releases.promote(rack.ctx, "shop", r1.id, None)
    assert started.release.id == r1.id
    assert started.promotion.state is State.PENDING
    assert started.promotion.previous_release_id is None
    assert rack.app("shop").status == "updating"

    promotion = await rack.finish(started.promotion.id)

    assert promotion.state is State.RUNNING and promotion.reason is None
    assert promotion.history == [State.PENDING, State.UPDATING, State.RUNNING]
    assert rack.statuses(promotion.id) == SUCCESS
    app = rack.app("shop")
    assert (app.status, app.release_id) == ("running", r1.id)
    [web] = rack.fake.live("shop")
    assert (web.service, web.release_id, web.status) == ("web", r1.id, "running")
    messages = rack.messages("shop", promotion.id)
    assert f"Scaled up release {r1.id} to 1" in messages
    assert f"Created process: {web.id}" in messages
    assert f"Started process (pid {web.pid}, port {web.port})" in messages
    assert "Healthy" in messages
    assert rack.audit("shop")[-2:] == [f"promotion.start {r1.id}", f"promotion.succeeded {r1.id}"]


async def test_promote_replaces_the_old_processes(rack: Rack) -> None:
    r1 = rack.deploy("shop", text=manifest(count=2))
    await rack.promote("shop", r1.id)
    old = {p.id for p in rack.fake.live("shop")}
    r2 = rack.deploy("shop", text=manifest(count=2))

    promotion = await rack.promote("shop")  # no id: the latest release

    assert promotion.release_id == r2.id and promotion.previous_release_id == r1.id
    assert rack.statuses(promotion.id) == SUCCESS
    assert rack.app("shop").release_id == r2.id
    live = rack.fake.live("shop")
    assert len(live) == 2 and {p.release_id for p in live} == {r2.id}
    assert old == {p.id for p in rack.fake.stopped}
    events = rack.events("shop", promotion.id)
    stopping = [e.object for e in events if e.message == "Stopping"]
    assert sorted(stopping) == sorted(old)


async def test_promote_refuses_what_cannot_run_before_writing_anything(rack: Rack) -> None:
    r1 = rack.deploy("shop", text=manifest().replace("  - GREETING=hello", "  - SECRET"))
    try:
        releases.promote(rack.ctx, "shop", r1.id, None)
    except InvalidInput as exc:
        assert str(exc) == "required env: SECRET"
    else:
        raise AssertionError("promote accepted a release missing a required env")
    assert rack.promotions("shop") == []
    assert rack.app("shop").status != "updating"
    assert rack.fake.applied == []


async def test_rollback_promotes_a_copy_and_leaves_the_target_as_it_was(rack: Rack) -> None:
    r1 = rack.deploy("shop", env={"COLOR": "blue"})
    await rack.promote("shop", r1.id)
    r2 = rack.deploy("shop", env={"COLOR": "green"})
    await rack.promote("shop", r2.id)
    before = rack.release("shop", r1.id)

    started = releases.rollback(rack.ctx, "shop", r1.id, None)
    promotion = await rack.finish(started.promotion.id)

    copy = started.release
    assert copy.id not in (r1.id, r2.id) and copy.number == 3
    assert copy.copied_from == r1.id
    assert (copy.build_id, copy.env, copy.manifest, copy.description) == (
        r1.build_id,
        {"COLOR": "blue"},
        r1.manifest,
        r1.description,
    )
    assert started.warnings == ()
    assert promotion.kind == "rollback" and promotion.release_id == copy.id
    assert promotion.previous_release_id == r2.id
    assert rack.statuses(promotion.id) == SUCCESS
    assert rack.app("shop").release_id == copy.id
    assert {p.release_id for p in rack.fake.live("shop")} == {copy.id}
    assert rack.release("shop", r1.id) == before
    assert rack.fake.applied[-1].services[0].environment["COLOR"] == "blue"
    assert f"release.rollback {copy.id}" in rack.audit("shop")


async def test_rollback_past_a_release_command_warns(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    r2 = rack.deploy("shop", text=manifest(release="python3 migrate.py"))
    await rack.promote("shop", r2.id)

    started = releases.rollback(rack.ctx, "shop", r1.id, None)
    await rack.finish(started.promotion.id)

    assert started.warnings == (
        f"WARNING: release commands ran after {r1.id} (in {r2.id}); rolling back does not "
        "revert what they did, such as database migrations",
    )
