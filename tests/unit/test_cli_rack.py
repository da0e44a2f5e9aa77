"""`rack start --detach` and `rack stop [--all]` print what they did, through shipmate.lifecycle.

The lifecycle is stubbed: these check the CLI's lines and the order of the steps; the
integration tests start and stop real racks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shipmate import lifecycle
from shipmate.cli.main import cli


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    monkeypatch.setenv("SHIPMATE_HOME", str(tmp_path))
    done: list[str] = []
    monkeypatch.setattr(lifecycle, "running_pid", lambda settings: 4242)

    def stop_rack(settings: object, pid: int, **options: object) -> list[lifecycle.Work]:
        done.append(f"rack {pid}")
        return []

    monkeypatch.setattr(lifecycle, "stop_rack", stop_rack)
    monkeypatch.setattr(lifecycle, "stop_apps", lambda settings: done.append("apps") or 3)
    monkeypatch.setattr(lifecycle, "router_pid", lambda settings: 4343)
    monkeypatch.setattr(lifecycle, "stop_router", lambda settings: done.append("router"))
    return done


def test_rack_stop_all_stops_the_rack_then_the_apps_then_the_router(steps: list[str]) -> None:
    result = CliRunner().invoke(cli, ["rack", "stop", "--all"])
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    assert result.stdout == (
        "Stopping rack (pid 4242)... OK\n"
        "Stopping app processes... OK (3)\n"
        "Stopping router (pid 4343)... OK\n"
    )
    assert steps == ["rack 4242", "apps", "router"]


def test_rack_stop_leaves_apps_and_router_serving(steps: list[str]) -> None:
    result = CliRunner().invoke(cli, ["rack", "stop"])
    assert (result.exit_code, result.stdout) == (0, "Stopping rack (pid 4242)... OK\n")
    assert steps == ["rack 4242"]


def test_rack_stop_says_what_it_waits_for_and_what_it_interrupted(
    steps: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    promotion = lifecycle.Work("promotion", "web", "RABCDEFGHI")
    build = lifecycle.Work("build", "api", "BABCDEFGHI")
    asked: list[object] = []

    def stop_rack(
        settings: object, pid: int, *, timeout: float, force: bool, waiting: Any
    ) -> list[lifecycle.Work]:
        asked.append((timeout, force))
        waiting(promotion)
        waiting(build)
        return [build]

    monkeypatch.setattr(lifecycle, "stop_rack", stop_rack)
    result = CliRunner().invoke(cli, ["rack", "stop", "--timeout", "5"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Stopping rack (pid 4242)...\n"
        "Waiting for the promotion of RABCDEFGHI of app web to finish...\n"
        "Waiting for build BABCDEFGHI of app api to finish...\n"
        "OK\n"
    )
    assert result.stderr == "Interrupted: build BABCDEFGHI of app api; run the build again\n"
    assert asked == [(5.0, False)]


def test_rack_stop_without_a_rack(
    steps: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(lifecycle, "running_pid", lambda settings: None)
    result = CliRunner().invoke(cli, ["rack", "stop"])
    assert (result.exit_code, result.stderr) == (1, f"ERROR: no rack is running under {tmp_path}\n")
    monkeypatch.setattr(lifecycle, "router_pid", lambda settings: None)
    result = CliRunner().invoke(cli, ["rack", "stop", "--all"])
    assert (result.exit_code, result.stdout) == (0, "Stopping app processes... OK (3)\n")
    assert steps == ["apps"]


def test_rack_start_detach_says_where_it_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SHIPMATE_HOME", str(tmp_path))
    monkeypatch.setattr(lifecycle, "running_pid", lambda settings: None)
    log = tmp_path / "rack.log"
    started = lifecycle.Started(99, "http://127.0.0.1:7070", "http://127.0.0.1:7080", log)
    calls: list[tuple[str, str, bool]] = []

    def start(settings: object, api: str, router: str, insecure: bool) -> lifecycle.Started:
        calls.append((api, router, insecure))
        return started

    monkeypatch.setattr(lifecycle, "start_detached", start)
    result = CliRunner().invoke(cli, ["rack", "start", "--detach"])
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    assert result.stdout == (
        f"Rack running: API http://127.0.0.1:7070, router http://127.0.0.1:7080 "
        f"(pid 99, log {log})\n"
    )
    assert calls == [("127.0.0.1:7070", "127.0.0.1:7080", False)]
    monkeypatch.setattr(lifecycle, "running_pid", lambda settings: 7)
    result = CliRunner().invoke(cli, ["rack", "start", "--detach"])
    assert result.stderr == f"ERROR: a rack is already running under {tmp_path} (pid 7)\n"
