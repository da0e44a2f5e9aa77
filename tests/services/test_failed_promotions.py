"""Promotions that fail: each reverts to the previous release, or says why it could not."""

from __future__ import annotations

import re

from shipmate.domain.errors import InvalidInput
from shipmate.domain.promotion import State, failure_message
from shipmate.runtimes.base import DesiredState
from shipmate.services import environment, releases
from tests.services.conftest import Rack, manifest

START = ["Status: Running => Pending", "Status: Pending => Updating"]
REVERTED = ["Status: Error => Rollback", "Status: Rollback => Reverted"]


def app_status_at_each_apply(rack: Rack, app: str) -> list[str]:
    seen: list[str] = []

    def record(desired: DesiredState) -> None:
        seen.append(f"{desired.release_id or '-'} {rack.app(app).status}")

    rack.fake.on_apply = record
    return seen


async def test_deadline_reverts_to_the_previous_release(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    [serving] = rack.fake.live("shop")
    r2 = rack.deploy("shop", env={"HEALTH_FAIL": "1"})
    rack.fake.script(r2.id, health="never")
    seen = app_status_at_each_apply(rack, "shop")

    started = releases.promote(rack.ctx, "shop", r2.id, 3)
    promotion = await rack.finish(started.promotion.id)

    assert rack.statuses(promotion.id) == [
        *START,
        "Status: Updating => Deadline",
        "Status: Deadline => Rollback",
        "Status: Rollback => Reverted",
    ]
    assert promotion.state is State.REVERTED and promotion.finished_at is not None
    assert re.fullmatch(
        r"deadline exceeded: web-\S+ \(last check: GET /health: HTTP 503\) not healthy within 3s",
        promotion.reason or "",
    )
    assert seen == [f"{r2.id} updating", f"{r1.id} rollback"]
    app = rack.app("shop")
    assert (app.status, app.release_id) == ("running", r1.id)
    assert [p.id for p in rack.fake.live("shop")] == [serving.id]
    assert rack.audit("shop")[-1] == f"promotion.reverted {r2.id}"


async def test_a_process_crashing_at_boot_is_an_error(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    r2 = rack.deploy("shop", env={"BOOT_FAIL": "1"})
    rack.fake.script(r2.id, health="crash", exit_code=3)

    promotion = await rack.promote("shop", r2.id)

    assert rack.statuses(promotion.id) == [*START, "Status: Updating => Error", *REVERTED]
    assert re.fullmatch(
        r"process web-\S+ exited with code 3 before it became healthy", promotion.reason or ""
    )
    assert "Exited with code 3" in rack.messages("shop")
    assert rack.app("shop").release_id == r1.id
    assert {p.release_id for p in rack.fake.live("shop")} == {r1.id}


async def test_a_first_promotion_that_fails_leaves_no_active_release(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    rack.fake.script(r1.id, health="crash")

    promotion = await rack.promote("shop", r1.id)

    assert promotion.state is State.REVERTED
    assert rack.fake.applied[-1] == DesiredState.nothing("shop")
    app = rack.app("shop")
    assert (app.status, app.release_id) == ("running", None)
    assert rack.fake.live("shop") == []


async def test_a_runtime_that_breaks_is_reverted_too(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    r2 = rack.deploy("shop")
    rack.fake.fail_next_apply(OSError("disk full"), release_id=r2.id)

    promotion = await rack.promote("shop", r2.id)

    assert rack.statuses(promotion.id) == [*START, "Status: Updating => Error", *REVERTED]
    assert promotion.reason == "disk full"
    assert rack.app("shop").release_id == r1.id


async def test_failure_when_the_revert_fails_too(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    r2 = rack.deploy("shop")
    rack.fake.script(r2.id, health="never")
    rack.fake.fail_next_apply(RuntimeError("the runtime is gone"), release_id=r1.id)

    started = releases.promote(rack.ctx, "shop", r2.id, 2)
    promotion = await rack.finish(started.promotion.id)

    assert rack.statuses(promotion.id) == [
        *START,
        "Status: Updating => Deadline",
        "Status: Deadline => Rollback",
        "Status: Rollback => Failure",
    ]
    assert promotion.state is State.FAILURE and promotion.finished_at is not None
    assert re.fullmatch(
        r"deadline exceeded: web-\S+ .* not healthy within 2s; "
        r"the revert failed too: the runtime is gone",
        promotion.reason or "",
    )
    app = rack.app("shop")
    assert (app.status, app.release_id) == ("running", r1.id)
    assert rack.audit("shop")[-1] == f"promotion.failed {r2.id}"
    # Over: the next promotion may start.
    rack.fake.script(r2.id)
    assert (await rack.promote("shop", r2.id)).state is State.RUNNING


async def test_release_command_failure_replaces_nothing(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    serving = {p.id for p in rack.fake.live("shop")}
    applied = len(rack.fake.applied)
    r2 = rack.deploy("shop", text=manifest(release="python3 migrate.py"))
    rack.fake.script(r2.id, run_exit=2, run_output=("migrating", "no such table: orders"))

    promotion = await rack.promote("shop", r2.id)

    assert rack.statuses(promotion.id) == [
        "Status: Running => Pending",
        "Status: Pending => Error",
        *REVERTED,
    ]
    assert promotion.reason == "release command failed with exit code 2: nothing was replaced"
    assert promotion.release_command == "python3 migrate.py"
    assert rack.fake.runs == [(r2.id, "web", "python3 migrate.py")]
    messages = rack.messages("shop", promotion.id)
    assert messages[1:4] == [
        "Running release command: python3 migrate.py",
        "migrating",
        "no such table: orders",
    ]
    obj = {e.message: e.object for e in rack.events("shop", promotion.id)}
    assert obj["migrating"] == f"release-{r2.id.lower()}"
    # Nothing of r2 ever ran: the only apply is the revert's, and it kept what served.
    assert [d.release_id for d in rack.fake.applied[applied:]] == [r1.id]
    assert {p.id for p in rack.fake.live("shop")} == serving
    assert rack.app("shop").release_id == r1.id


async def test_release_command_runs_once_before_anything_is_replaced(rack: Rack) -> None:
    r1 = rack.deploy("shop", text=manifest(release="python3 migrate.py"))
    rack.fake.script(r1.id, run_output=("migrated",))

    promotion = await rack.promote("shop", r1.id)

    assert promotion.state is State.RUNNING
    messages = rack.messages("shop", promotion.id)
    finished = messages.index("Release command finished (exit code 0)")
    assert messages.index("migrated") < finished < messages.index("Status: Pending => Updating")
    assert rack.fake.runs == [(r1.id, "web", "python3 migrate.py")]


async def test_a_rollback_target_that_cannot_run_is_refused_before_the_copy(rack: Rack) -> None:
    r1 = rack.deploy("shop", text=manifest().replace("command: python3 app.py", "port: 5000"))
    # Not runnable (no command): refused, and no copy written.
    try:
        releases.rollback(rack.ctx, "shop", r1.id, None)
    except InvalidInput as exc:
        assert "has no command" in str(exc)
    else:
        raise AssertionError("rollback accepted a release that cannot run")
    assert [r.id for r in releases.list_releases(rack.ctx, "shop", 10)] == [r1.id]


async def test_the_cli_words_a_failure_from_the_record_the_store_returns(rack: Rack) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    r2 = rack.deploy("shop")
    rack.fake.script(r2.id, health="crash")

    promotion = await rack.promote("shop", r2.id)

    assert isinstance(promotion.state, State)
    assert all(isinstance(s, State) for s in promotion.history)
    assert not promotion.succeeded and promotion.outcome == "reverted"
    assert promotion.app_status == rack.app("shop").status == "running"
    assert failure_message(promotion) == f"rollback: {promotion.reason} (run shipmate deploy-debug)"


async def test_a_reverted_release_is_marked_and_env_says_changes_fork_from_it(
    rack: Rack,
) -> None:
    r1 = rack.deploy("shop")
    await rack.promote("shop", r1.id)
    r2 = rack.deploy("shop")
    rack.fake.script(r2.id, health="never")
    assert (await rack.promote("shop", r2.id)).state is State.REVERTED

    listed = releases.list_releases(rack.ctx, "shop", 10)
    assert releases.statuses(rack.ctx, "shop", listed) == {r2.id: "reverted", r1.id: "active"}
    note = (
        f"the latest release {r2.id} is not active (its promotion was reverted); "
        f"changes fork from it, the active release is {r1.id}"
    )
    assert environment.get_env(rack.ctx, "shop").note == note
    change = environment.change_env(rack.ctx, "shop", ["A=1"], [])
    assert change.note == note
    # The change forked from r2 as before; of the new release, never promoted, nothing is
    # said: an env change without --promote is the ordinary way of working.
    assert change.release is not None
    assert environment.get_env(rack.ctx, "shop").note is None
