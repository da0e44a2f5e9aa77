"""Starting and stopping a rack as a user does: from any directory, and during a promotion."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from shipmate.common.waiting import poll_until
from tests.integration.conftest import EXAMPLE, Rack, _cli, start_rack, stop_rack

# Modules a rack, its router or a shim would import, shadowed by a directory's own files.
SHADOWS = ("yaml", "click", "httpx", "uvicorn", "fastapi", "sqlalchemy", "json")


def _trap(directory: Path, shadows: tuple[str, ...] = SHADOWS) -> Path:
    """A directory whose files shadow what shipmate imports: each one fails when imported."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "shipmate").mkdir(exist_ok=True)
    (directory / "shipmate" / "__init__.py").write_text(
        'raise ImportError("the shipmate/ of the current directory was imported")\n'
    )
    for name in shadows:
        (directory / f"{name}.py").write_text(
            f'raise ImportError("the {name}.py of the current directory was imported")\n'
        )
    return directory


def _rack_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env["SHIPMATE_HOME"] = str(home)
    return env


def test_rack_starts_from_a_directory_that_shadows_its_imports(tmp_path: Path) -> None:
    trap = _trap(tmp_path / "project")
    # The app's directory shadows too (not the standard library, which the app imports
    # itself): the shim, started there, must not import from it.
    source = _trap(tmp_path / "source", tuple(n for n in SHADOWS if n != "json"))
    for item in EXAMPLE.iterdir():
        shutil.copy(item, source / item.name)
    rack = Rack(tmp_path / "home", _rack_env(tmp_path / "home"))
    out = rack.ok(
        "rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0", cwd=trap
    )
    try:
        assert out.startswith("Rack running: API http://127.0.0.1:")
        rack.ok("apps", "create", "trapped", cwd=trap)
        rack.ok("deploy", str(source), "-a", "trapped", cwd=trap)
        assert rack.get("trapped").json()["app"] == "trapped"
    finally:
        stop_rack(rack)


def test_rack_in_the_foreground_starts_its_router_from_any_directory(tmp_path: Path) -> None:
    # A rack run in the foreground keeps the caller's directory; the router it starts must
    # not import from it.
    trap = _trap(tmp_path / "project")
    rack = Rack(tmp_path / "home", _rack_env(tmp_path / "home"))
    proc = subprocess.Popen(
        [*_cli(), "rack", "start", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0"],
        env=rack.env,
        cwd=trap,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        poll_until(
            lambda: (rack.home / "rack.json").exists() or proc.poll() is not None,
            60,
            what="the rack to start",
        )
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        rack.ok("apps", "create", "front")
        rack.ok("deploy", str(EXAMPLE), "-a", "front")
        assert rack.get("front").json()["app"] == "front"
    finally:
        stop_rack(rack)
        proc.wait(30)


def test_a_failed_start_prints_its_own_reason_not_an_older_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "rack.log").write_text(
        "2026-01-01 00:00:00 shipmate.rack an older start\n"
        "ERROR: a stale reason of an older start\n"
    )
    (home / "shipmate.db").write_bytes(b"this is not a database\n" * 200)
    rack = Rack(home, _rack_env(home))
    result = rack.run("rack", "start", "--detach", "--api", "127.0.0.1:0")
    assert result.code == 1
    assert result.out == ""
    assert "stale" not in result.err
    assert result.err == (
        "ERROR: the rack did not start: sqlalchemy.exc.DatabaseError: (sqlite3.DatabaseError) "
        f"file is not a database (see {home / 'rack.log'})\n"
    )


RELEASE_LINE = re.compile(r"^Release: (R[A-Z]{9})$", re.M)


def _slow_release(rack: Rack, app: str, boot_ms: int) -> str:
    """A release of `app` whose processes take `boot_ms` to listen: a promotion to stop in."""
    out = rack.ok("env", "set", f"BOOT_DELAY_MS={boot_ms}", "-a", app)
    found = RELEASE_LINE.search(out)
    assert found, out
    return found.group(1)


def _promoting(rack: Rack, app: str, release: str) -> subprocess.Popen[str]:
    client = rack.popen("releases", "promote", release, "-a", app)

    def updating() -> bool:
        info = json.loads(rack.ok("apps", "info", "-a", app, "--json"))
        return bool(info["status"] == "updating")

    poll_until(updating, 30, interval=0.1, what="the promotion to start")
    return client


def _log_says(rack: Rack, text: str) -> None:
    poll_until(lambda: text in (rack.home / "rack.log").read_text(), 30, what=repr(text))


def test_rack_stop_waits_for_the_promotion_running(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    rack = start_rack(tmp_path / "home")
    try:
        rack.deploy("slow")
        release = _slow_release(rack, "slow", 12000)
        client = _promoting(rack, "slow", release)
        stopping = rack.popen("rack", "stop")
        _log_says(rack, "stopping: waiting for")
        # The API still answers, and refuses what would start new work, in one line.
        refused = rack.run("releases", "promote", release, "-a", "slow")
        assert refused.code == 1
        assert refused.err == (
            "ERROR: the rack is stopping: it starts no new promotion (it finishes those "
            "running); try again once it is started again\n"
        )
        answer = httpx.post(
            f"{rack.info['api']}/apps/slow/releases/{release}/promote",
            json={},
            headers={"Authorization": f"Bearer {(rack.home / 'token').read_text().strip()}"},
            timeout=10,
        )
        assert (answer.status_code, answer.json()["code"]) == (503, "rack_stopping")
        out, err = stopping.communicate(timeout=90)
        assert (stopping.returncode, err) == (0, "")
        assert re.fullmatch(
            r"Stopping rack \(pid \d+\)\.\.\.\n"
            rf"Waiting for the promotion of {release} of app slow to finish\.\.\.\n"
            r"OK\n",
            out,
        ), out
        # The client following the promotion saw it end, as if nothing had happened.
        followed, err = client.communicate(timeout=30)
        assert (client.returncode, err) == (0, ""), followed
        assert followed.startswith(f"Promoting {release}...\n")
        assert followed.endswith("OK\n")
        assert not (rack.home / "rack.json").exists()
        rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")
        info = json.loads(rack.ok("apps", "info", "-a", "slow", "--json"))
        assert (info["status"], info["release"]) == ("running", release)
    finally:
        stop_rack(rack)


def test_rack_stop_force_interrupts_the_promotion_and_the_next_start_reverts_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "home").mkdir()
    rack = start_rack(tmp_path / "home")
    try:
        rack.deploy("slow")
        before = json.loads(rack.ok("apps", "info", "-a", "slow", "--json"))["release"]
        release = _slow_release(rack, "slow", 30000)
        client = _promoting(rack, "slow", release)
        stopped = rack.run("rack", "stop", "--force", timeout=60)
        assert stopped.code == 0, stopped.err
        assert re.fullmatch(r"Stopping rack \(pid \d+\)\.\.\. OK\n", stopped.out), stopped.out
        assert stopped.err == (
            f"Interrupted: the promotion of {release} of app slow; "
            "the next `shipmate rack start` reverts it\n"
        )
        _, err = client.communicate(timeout=30)
        assert client.returncode == 1
        assert "lost the rack" in err
        rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")

        def settled() -> dict[str, object] | None:
            info: dict[str, object] = json.loads(rack.ok("apps", "info", "-a", "slow", "--json"))
            return info if info["status"] == "running" else None

        assert poll_until(settled, 60, interval=0.2)["release"] == before
    finally:
        stop_rack(rack)


def test_rack_stop_timeout_bounds_the_wait(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    rack = start_rack(tmp_path / "home")
    try:
        rack.deploy("slow")
        release = _slow_release(rack, "slow", 30000)
        client = _promoting(rack, "slow", release)
        started = time.monotonic()
        stopped = rack.run("rack", "stop", "--timeout", "2", timeout=60)
        assert time.monotonic() - started < 20
        assert stopped.code == 0, stopped.err
        assert re.fullmatch(
            r"Stopping rack \(pid \d+\)\.\.\.\n"
            rf"Waiting for the promotion of {release} of app slow to finish\.\.\.\n"
            r"OK\n",
            stopped.out,
        ), stopped.out
        assert stopped.err == (
            f"Interrupted: the promotion of {release} of app slow; "
            "the next `shipmate rack start` reverts it\n"
        )
        client.communicate(timeout=30)
    finally:
        stop_rack(rack)
