"""Concurrent changes of one app through the real CLI: nothing lost, one promotion at a time."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from datetime import datetime
from itertools import pairwise
from typing import Any

from shipmate.common.waiting import poll_until
from tests.integration.conftest import EXAMPLE, Rack

RELEASE_LINE = re.compile(r"^Release: (R[A-Z]{9})$", re.M)
OK_LINE = re.compile(r"^OK, (R[A-Z]{9})$", re.M)
BUSY = re.compile(r"ERROR: app (\S+) is updating \(promotion of (R[A-Z]{9}) in progress\)\n")
WAITING = re.compile(r"^Waiting for the promotion of (R[A-Z]{9}) to finish\.\.\.$", re.M)


def _all(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        done.append((proc.returncode, out, err))
    return done


def _history(rack: Rack, app: str) -> list[dict[str, Any]]:
    """Every release of the app, oldest first."""
    found = json.loads(rack.ok("releases", "-a", app, "--limit", "1000", "--json"))
    return sorted(found, key=lambda r: r["number"])


def _promotions(rack: Rack, app: str, release_ids: list[str]) -> list[dict[str, Any]]:
    promotions = []
    for release_id in release_ids:
        info = json.loads(rack.ok("releases", "info", release_id, "-a", app, "--json"))
        promotions += info["promotions"]
    return sorted(promotions, key=lambda p: p["created"])


def _one_at_a_time(promotions: list[dict[str, Any]]) -> None:
    for earlier, later in pairwise(promotions):
        assert earlier["finished"] is not None
        ended = datetime.fromisoformat(earlier["finished"])
        assert ended <= datetime.fromisoformat(later["created"]), (earlier, later)


def test_twenty_concurrent_env_sets_chain_without_gaps(rack: Rack) -> None:
    rack.deploy("envy")
    [base] = _history(rack, "envy")
    n = 20
    results = _all([rack.popen("env", "set", f"K{i}=v{i}", "-a", "envy") for i in range(n)])
    reported = []
    for code, out, err in results:
        assert (code, err) == (0, ""), out
        reported.append(RELEASE_LINE.search(out).group(1))  # type: ignore[union-attr]

    history = _history(rack, "envy")
    assert history[0] == base
    assert sorted(r["id"] for r in history[1:]) == sorted(reported)
    assert [r["number"] for r in history] == list(range(1, n + 2))
    parents = set()
    for parent, release in pairwise(history):
        key = release["description"].removeprefix("env add:")
        assert release["description"] == f"env add:{key}"
        # Exactly its parent's environment plus its own key: no change lost, no fork.
        assert release["env"] == {**parent["env"], key: f"v{key[1:]}"}
        assert release["build"] == base["build"]
        parents.add(parent["id"])
    assert len(parents) == n
    assert history[-1]["env"] == {**base["env"], **{f"K{i}": f"v{i}" for i in range(n)}}


def _slow_target(rack: Rack, app: str, boot_ms: int = 2500) -> str:
    """Deploy `app`, then create (not promote) a release of it that boots slowly.

    The example app sleeps BOOT_DELAY_MS before it listens, so a promotion to that release
    lasts at least that long and commands started together overlap with it.
    """
    rack.deploy(app)
    out = rack.ok("env", "set", f"BOOT_DELAY_MS={boot_ms}", "-a", app)
    return RELEASE_LINE.search(out).group(1)  # type: ignore[union-attr]


def _eventually(check: Callable[[], bool], timeout: float = 60) -> None:
    poll_until(check, timeout, interval=0.1)


def _status(rack: Rack, app: str) -> str:
    return str(json.loads(rack.ok("apps", "info", "-a", app, "--json"))["status"])


def test_five_concurrent_rollbacks_one_at_a_time_the_others_refused(rack: Rack) -> None:
    target = _slow_target(rack, "rolly")
    before = _history(rack, "rolly")
    results = _all([rack.popen("releases", "rollback", target, "-a", "rolly") for _ in range(5)])

    copies = []
    refused = []
    for code, out, err in results:
        if code == 0:
            assert err == ""
            copies.append(OK_LINE.search(out).group(1))  # type: ignore[union-attr]
        else:
            busy = BUSY.fullmatch(err)
            assert busy is not None and busy.group(1) == "rolly", err
            refused.append(busy.group(2))
    assert copies and refused
    assert set(refused) <= set(copies)  # refused because of one of ours

    history = _history(rack, "rolly")
    latest = history[-1]["id"]
    assert history[: len(before)] == [
        {**r, "active": r["id"] == latest, "status": "active" if r["id"] == latest else ""}
        for r in before
    ]  # nothing old changed (but who is active), and a refused rollback created nothing
    new = history[len(before) :]
    assert sorted(r["id"] for r in new) == sorted(copies)
    target_release = next(r for r in before if r["id"] == target)
    for copy in new:
        assert copy["copied_from"] == target
        assert (copy["build"], copy["env"]) == (target_release["build"], target_release["env"])
    _one_at_a_time(_promotions(rack, "rolly", copies))
    info = json.loads(rack.ok("apps", "info", "-a", "rolly", "--json"))
    assert (info["status"], info["release"]) == ("running", history[-1]["id"])
    assert rack.get("rolly").json()["release"] == history[-1]["id"]


def test_five_concurrent_rollbacks_with_wait_for_lock_all_proceed_in_turn(rack: Rack) -> None:
    target = _slow_target(rack, "waity")
    before = _history(rack, "waity")
    results = _all(
        [
            rack.popen("releases", "rollback", target, "-a", "waity", "--wait-for-lock")
            for _ in range(5)
        ]
    )
    copies = []
    waited = 0
    for code, out, err in results:
        assert (code, err) == (0, ""), out
        copies.append(OK_LINE.search(out).group(1))  # type: ignore[union-attr]
        waiting = WAITING.search(out)
        if waiting:
            waited += 1
            assert out.index("Waiting for") < out.index(f"Rolling back to {target}...")
    assert waited >= 1

    history = _history(rack, "waity")
    new = history[len(before) :]
    assert sorted(r["id"] for r in new) == sorted(copies)
    assert all(r["copied_from"] == target for r in new)
    promotions = _promotions(rack, "waity", copies)
    assert len(promotions) == 5 and all(p["succeeded"] for p in promotions)
    _one_at_a_time(promotions)
    assert rack.get("waity").json()["release"] == history[-1]["id"]


def test_wait_for_lock_on_env_promote_and_deploy_and_other_apps_go_on(rack: Rack) -> None:
    # 15 s: the commands below must start while it runs, even on a loaded machine.
    target = _slow_target(rack, "locky", boot_ms=15000)
    rack.deploy("bystander")
    rollback = rack.popen("releases", "rollback", target, "-a", "locky")
    _eventually(lambda: _status(rack, "locky") == "updating")

    # Another app is not held up by this one's promotion.
    other = rack.ok("env", "set", "B=1", "--promote", "-a", "bystander")
    assert other.rstrip().endswith("OK")
    # The same app: the env change is a new release; only its promotion is refused.
    refused = rack.run("env", "set", "A=1", "--promote", "-a", "locky")
    assert refused.code == 1 and BUSY.fullmatch(refused.err), refused
    assert RELEASE_LINE.search(refused.out)
    # ... or waits its turn.
    waited = rack.ok(
        "env", "set", "C=1", "BOOT_DELAY_MS=0", "--promote", "--wait-for-lock", "-a", "locky"
    )
    assert WAITING.search(waited), waited
    assert waited.rstrip().endswith("OK")
    code, out, err = _all([rollback])[0]
    assert (code, err) == (0, ""), out
    latest = RELEASE_LINE.search(waited).group(1)  # type: ignore[union-attr]
    assert rack.get("locky").json()["release"] == latest

    [copy] = [r for r in _history(rack, "locky") if r["copied_from"] == target]
    [slow] = _promotions(rack, "locky", [copy["id"]])
    bystander = RELEASE_LINE.search(other).group(1)  # type: ignore[union-attr]
    [fast] = _promotions(rack, "bystander", [bystander])
    assert fast["finished"] < slow["finished"]  # it did not wait for locky's promotion

    deployed = rack.ok("deploy", str(EXAMPLE), "-a", "locky", "--wait-for-lock")
    assert deployed.rstrip().endswith("OK")
