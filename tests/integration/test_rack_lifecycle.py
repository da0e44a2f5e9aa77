"""Starting and stopping a rack as a user does: from any directory, and during a promotion."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from shipmate.common.waiting import poll_until
from tests.integration.conftest import EXAMPLE, Rack, _cli, stop_rack

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
