"""SIGKILL of the rack at random points: what the CLI reported as created is never lost."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipmate.common.pids import pid_alive
from shipmate.common.waiting import WaitTimeout, poll_until
from tests.integration.conftest import EXAMPLE, Rack, start_rack, stop_rack

RELEASE_LINE = re.compile(r"^Release: (R[A-Z]{9})$", re.M)
BUILD_LINE = re.compile(r"^Build:   (B[A-Z]{9})$", re.M)
OK_LINE = re.compile(r"^OK, (R[A-Z]{9})$", re.M)
OPERATIONS = 20
# Release creations and promotions: env changes promoted, rollbacks, builds.
KINDS = ("env", "rollback", "env", "rollback", "build")
EVENT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ system/\S+ .*$", re.M)
APP = "durable"


def _history(rack: Rack) -> dict[str, dict[str, Any]]:
    found = json.loads(rack.ok("releases", "-a", APP, "--limit", "1000", "--json"))
    return {r["id"]: r for r in found}


def _settled(rack: Rack, timeout: float = 120) -> dict[str, Any]:
    """The app once the restarted rack has reverted or finished what it was doing."""

    def running() -> dict[str, Any] | None:
        info: dict[str, Any] = json.loads(rack.ok("apps", "info", "-a", APP, "--json"))
        return info if info["status"] == "running" else None

    return poll_until(running, timeout, interval=0.2, what="the app to run after a restart")


def _serving(rack: Rack, release: str, timeout: float = 60) -> None:
    last: list[object] = [None]

    def serving() -> bool:
        try:
            response = rack.get(APP)
        except httpx.HTTPError as exc:
            last[0] = exc
            return False
        last[0] = response.status_code, response.text
        return response.status_code == 200 and response.json()["release"] == release

    try:
        poll_until(serving, timeout, interval=0.2)
    except WaitTimeout:
        raise AssertionError(f"router not serving {release}: {last[0]}") from None


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    # Gone, or a zombie nobody reaps: either way, dead.
    poll_until(lambda: not pid_alive(pid), 30, interval=0.01, what=f"pid {pid} to die")


def _restart(rack: Rack) -> None:
    rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")


@pytest.mark.timeout(900)
def test_sigkill_at_random_points_loses_nothing_reported(database_url: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("SHIPMATE_KILL_SEED") or random.randrange(1 << 32))
    rng = random.Random(seed)
    note = f"(SHIPMATE_KILL_SEED={seed})"
    rack = start_rack(tmp_path, database_url)
    try:
        out = rack.deploy(APP)
        first = RELEASE_LINE.search(out).group(1)  # type: ignore[union-attr]
        build = BUILD_LINE.search(out).group(1)  # type: ignore[union-attr]
        history = _history(rack)
        # What the CLI said it created, and what each must hold.
        reported: dict[str, tuple[str | None, dict[str, str]]] = {first: (build, {})}
        reported_builds = {build: first}
        shown_events: list[str] = []
        assert history[first]["env"] == {}

        for i in range(OPERATIONS):
            latest = max(history.values(), key=lambda r: r["number"])
            kind = KINDS[i % len(KINDS)]
            if kind == "env":
                args: tuple[str, ...] = ("env", "set", f"K{i}=v{i}", "--promote", "-a", APP)
                expected = (latest["build"], {**latest["env"], f"K{i}": f"v{i}"}, None)
            elif kind == "rollback":
                target = history[rng.choice(sorted(reported))]
                args = ("releases", "rollback", target["id"], "-a", APP)
                expected = (target["build"], target["env"], target["id"])
            else:
                args = ("build", str(EXAMPLE), "-a", APP)
                expected = (None, latest["env"], None)  # the build is new: checked below
            cli = rack.popen(*args)
            # A random point of the command: after some of its output lines (the release
            # created, the promotion's steps, the end), then a little more.
            lines = rng.randrange(7 if kind == "build" else 12)  # a build says less
            seen = [cli.stdout.readline() for _ in range(lines)]  # type: ignore[union-attr]
            time.sleep(rng.uniform(0.0, 0.5))
            _kill(int(rack.info["pid"]))
            # Read on through the same buffered pipe (communicate() would skip what
            # readline() already buffered).
            out = "".join(seen) + cli.stdout.read()  # type: ignore[union-attr]
            cli.stderr.read()  # type: ignore[union-attr]
            cli.wait(timeout=120)
            said = (OK_LINE if kind == "rollback" else RELEASE_LINE).search(out)
            said_build = BUILD_LINE.search(out)
            shown_events += EVENT_LINE.findall(out)
            _restart(rack)
            info = _settled(rack)

            before, history = history, _history(rack)
            builds = {b["id"]: b for b in json.loads(rack.ok("builds", "-a", APP, "--json"))}
            step = f"after operation {i} ({' '.join(args)}) {note}"
            # Nothing old changed (bar the active flag and status), and at most one release
            # is new...
            for rid, old in before.items():
                moved = {"active": False, "status": ""}
                assert {**history[rid], **moved} == {**old, **moved}, step
            new = [r for rid, r in history.items() if rid not in before]
            assert len(new) <= 1, step
            # ... complete: exactly what the command was creating, never half of it.
            for release in new:
                got = (release["build"], release["env"], release["copied_from"])
                if kind == "build":
                    assert builds[release["build"]]["status"] == "complete", step
                    assert builds[release["build"]]["release"] == release["id"], step
                    got = (None, *got[1:])
                assert got == expected, step
                assert release["number"] == latest["number"] + 1, step
            if said:
                assert [r["id"] for r in new] == [said.group(1)], step
                reported[said.group(1)] = (new[0]["build"], expected[1])
            if said_build:
                reported_builds[said_build.group(1)] = said.group(1) if said else ""
            for rid, (build_id, env) in reported.items():
                assert (history[rid]["build"], history[rid]["env"]) == (build_id, env), step
            # A build is complete with its release, or failed; none is left running.
            assert all(b["status"] in ("complete", "failed") for b in builds.values()), step
            for build_id, release_id in reported_builds.items():
                assert (builds[build_id]["status"], builds[build_id]["release"]) == (
                    "complete",
                    release_id,
                ), step
            # Every event the CLI showed is still there.
            events = set(rack.ok("logs", "-a", APP, "--no-follow", "--since", "1h").splitlines())
            assert [e for e in shown_events if e not in events] == [], step

            # Running on exactly one release, the active one, and serving it.
            active = [rid for rid, r in history.items() if r["active"]]
            assert active == [info["release"]], step
            _serving(rack, info["release"])
    finally:
        stop_rack(rack)
