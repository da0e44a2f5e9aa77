"""Issue 10, the release path as a new user met it: a rack killed during a release command,
what `releases` and `env` say after a reverted promotion, release output in `logs`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

from shipmate.common.waiting import poll_until
from tests.integration.conftest import EXAMPLE, Rack

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
# How long the release command of the kill test sleeps before it leaves its marker: longer
# than killing and restarting a rack takes, short enough to wait out.
RELEASE_SLEEP = 15


def with_release(tmp_path: Path, command: str) -> Path:
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)
    manifest = source / "shipmate.yml"
    manifest.write_text(f"release: {command}\n" + manifest.read_text())
    return source


def events(rack: Rack, app: str) -> str:
    return rack.ok("logs", "-a", app, "--no-follow", "--since", "1h")


def settled(rack: Rack, app: str) -> dict[str, object]:
    def running() -> dict[str, object] | None:
        info: dict[str, object] = json.loads(rack.ok("apps", "info", "-a", app, "--json"))
        return info if info["status"] == "running" else None

    return poll_until(running, 120, interval=0.2, what=f"{app} to run")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def test_a_reverted_release_is_marked_and_env_says_changes_fork_from_it(rack: Rack) -> None:
    rack.deploy("forky")
    r1 = rack.releases("forky")[0]["id"]
    failed = rack.run("env", "set", "HEALTH_FAIL=1", "--promote", "--wait", "3", "-a", "forky")
    assert failed.code == 1 and failed.err.startswith("ERROR: rollback: deadline exceeded")
    r2 = rack.releases("forky")[0]["id"]

    table = rack.ok("releases", "-a", "forky").splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["ID", "STATUS", "BUILD", "CREATED", "DESCRIPTION"]
    assert re.split(r"\s{2,}", table[1])[:2] == [r2, "reverted"]
    assert re.split(r"\s{2,}", table[2])[:2] == [r1, "active"]
    # The column is as wide as its widest word; the active row lines up with the others.
    assert table[1].index("reverted") == table[2].index("active") == table[0].index("STATUS")
    listed = rack.releases("forky")
    assert [(r["id"], r["status"], r["active"]) for r in listed] == [
        (r2, "reverted", False),
        (r1, "active", True),
    ]

    note = (
        f"Note: the latest release {r2} is not active (its promotion was reverted); "
        f"changes fork from it, the active release is {r1}\n"
    )
    shown = rack.run("env", "-a", "forky")
    assert shown.code == 0 and shown.err == note
    assert "HEALTH_FAIL=1" in shown.out.splitlines()  # the latest release's, as before
    as_json = rack.run("env", "-a", "forky", "--json")
    assert json.loads(as_json.out)["HEALTH_FAIL"] == "1" and as_json.err == note
    changed = rack.run("env", "set", "X=1", "-a", "forky")
    assert changed.code == 0 and changed.err == note
    r3 = re.fullmatch(r"Setting X\.\.\. OK\nRelease: (R[A-Z]{9})\n", changed.out)
    assert r3 is not None
    # The rule is kept: the change forked from the reverted release.
    env = json.loads(rack.run("env", "-a", "forky", "--json").out)
    assert env == {"HEALTH_FAIL": "1", "X": "1"}

    unset = rack.run("env", "unset", "HEALTH_FAIL", "--promote", "-a", "forky")
    assert unset.code == 0, unset.err
    # Of R3, never promoted, nothing is said: that is the ordinary way of working.
    assert unset.err == ""
    # The latest release is the active one again: nothing more is said.
    assert rack.ok("env", "-a", "forky") == "X=1\n"
    assert [r["status"] for r in rack.releases("forky")][:4] == ["active", "", "reverted", ""]


def test_release_command_output_is_shown_once_in_logs(rack: Rack, tmp_path: Path) -> None:
    rack.ok("apps", "create", "migrator")
    out = rack.ok(
        "deploy", str(with_release(tmp_path, "echo migrating $RELEASE")), "-a", "migrator"
    )
    r1 = rack.releases("migrator")[0]["id"]
    # The promotion's stream shows it as it runs...
    assert re.search(rf"^{STAMP} system/local/release-{r1.lower()} migrating {r1}$", out, re.M)
    # ... and `logs` once, under the same name: the release command is no process of `ps`.
    logs = events(rack, "migrator")
    shown = [line for line in logs.splitlines() if line.endswith(f" migrating {r1}")]
    assert len(shown) == 1, logs
    assert re.fullmatch(rf"{STAMP} system/local/release-{r1.lower()} migrating {r1}", shown[0])
    assert "Release command finished (exit code 0)" in logs


def test_rack_killed_during_the_release_command_stops_it_and_reverts(
    rack: Rack, tmp_path: Path
) -> None:
    rack.deploy("phasekill")
    r1 = rack.releases("phasekill")[0]["id"]
    marker = tmp_path / "marker"
    source = with_release(tmp_path, f"echo started; sleep {RELEASE_SLEEP}; touch {marker}")
    deploy = rack.popen("deploy", str(source), "-a", "phasekill")
    poll_until(
        lambda: "Running release command" in events(rack, "phasekill"),
        120,
        interval=0.2,
        what="the release command to start",
    )
    began = time.monotonic()
    os.kill(int(rack.info["pid"]), signal.SIGKILL)
    deploy.communicate(timeout=60)
    assert deploy.returncode == 1  # the CLI lost its rack and says so
    (rack.home / "rack.json").unlink()
    rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")

    info = settled(rack, "phasekill")
    assert info["release"] == r1
    latest = rack.releases("phasekill")[0]
    assert latest["id"] != r1
    logs = events(rack, "phasekill")
    obj = f"system/local/release-{str(latest['id']).lower()}"
    stopped = re.search(
        rf"^{STAMP} {obj} Stopped the release command \(pid (\d+)\) before the revert$",
        logs,
        re.M,
    )
    assert stopped is not None, logs
    assert re.search(
        rf"^{STAMP} {obj} Release command: (Stopped \(exit code \d+\)|Killed)", logs, re.M
    )
    lines = logs.splitlines()
    stop_at = next(i for i, line in enumerate(lines) if "Stopped the release command" in line)
    revert_at = next(i for i, line in enumerate(lines) if "Rollback => Reverted" in line)
    assert stop_at < revert_at
    # Gone, with its whole process group (the sleep too); no one-off left in `ps`.
    assert not group_alive(int(stopped.group(1)))
    assert all(p["release"] == r1 for p in json.loads(rack.ok("ps", "-a", "phasekill", "--json")))
    # It never finishes: wait out the sleep, and the marker never appears.
    time.sleep(max(0.0, began + RELEASE_SLEEP + 2 - time.monotonic()))
    assert not marker.exists()
    assert rack.get("phasekill").json()["release"] == r1
    assert rack.releases("phasekill")[0]["status"] == "reverted"
