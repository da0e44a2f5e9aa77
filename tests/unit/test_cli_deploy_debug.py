"""`deploy-debug`'s output, exactly, from a scripted rack answer: click's CliRunner over an
httpx.MockTransport."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from shipmate.cli import deploy_debug
from shipmate.cli.client import Client
from shipmate.cli.main import cli

PROCESS: dict[str, Any] = {
    "id": "web-rabcdefghi-x1abc",
    "service": "web",
    "release": "RABCDEFGHI",
    "state": "unhealthy",
    "status": "exited",
    "started": "2026-01-15T14:30:49Z",
    "healthy_at": None,
    "exited": "2026-01-15T14:30:52Z",
    "port": 40111,
    "command": "python3 app.py",
    "health_problem": "GET /health: ConnectError",
    "exit_code": 143,
    "exit_codes": [],
    "stopped": True,
    "oom_killed": False,
    "memory_limit": None,
    "output": [{"time": "2026-01-15T14:30:49Z", "text": "listening on 5000"}],
    "previous_crash": None,
    "hint": "it did not listen on $PORT (40111): make it bind 0.0.0.0:$PORT",
}
ANSWER: dict[str, Any] = {
    "app": "shop",
    "release": "RABCDEFGHI",
    "latest_release": "RABCDEFGHI",
    "promotion": None,
    "processes": [PROCESS],
    "hidden": 0,
    "missing_env": [],
    "events": [],
}


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ANSWER)

    transport = httpx.MockTransport(answer)
    monkeypatch.setattr(
        Client, "from_env", classmethod(lambda cls: cls("http://rack.test", "t", transport))
    )
    return seen


def test_summary_is_one_line_per_process(requests: list[httpx.Request]) -> None:
    result = CliRunner().invoke(
        cli, ["deploy-debug", "-a", "shop", "--output", "summary", "--lines", "5", "--all"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "ID                    SERVICE  STATE      DETAIL                                 HINT",
        "web-rabcdefghi-x1abc  web      unhealthy  last check: GET /health: ConnectError  "
        "it did not listen on $PORT (40111): make it bind 0.0.0.0:$PORT",
    ]
    [request] = requests
    assert request.url.path == "/apps/shop/deploy-debug"
    assert dict(request.url.params) == {"lines": "5", "all": "true", "events": "true"}


def test_json_is_the_rack_answer(requests: list[httpx.Request]) -> None:
    result = CliRunner().invoke(
        cli, ["deploy-debug", "-a", "shop", "--output", "json", "--service", "web", "--no-events"]
    )
    assert json.loads(result.output) == ANSWER
    assert dict(requests[0].url.params)["service"] == "web"
    assert dict(requests[0].url.params)["events"] == "false"


def test_watch_runs_again_until_interrupted(
    requests: list[httpx.Request], monkeypatch: pytest.MonkeyPatch
) -> None:
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(deploy_debug.time, "sleep", sleep)
    result = CliRunner().invoke(
        cli, ["deploy-debug", "-a", "shop", "--output", "summary", "--watch", "2"]
    )
    assert result.exit_code == 0, result.output
    assert len(requests) == 2 and naps == [2.0, 2.0]
    assert result.output.count("Every 2s: shipmate deploy-debug -a shop  ") == 2


def test_detail_words_each_state() -> None:
    crash = {**PROCESS, "state": "crash-looping", "exit_codes": [1, 1, 1]}
    assert deploy_debug.detail(crash) == "exit codes 1, 1, 1"
    oom = {**PROCESS, "state": "oom-killed", "memory_limit": 64}
    assert deploy_debug.detail(oom) == "out of memory (limit 64 MB)"
    exited = {**PROCESS, "state": "exited", "exit_code": 3}
    assert deploy_debug.detail(exited) == "exit code 3"
    healthy = {**PROCESS, "state": "healthy", "health_problem": None}
    assert deploy_debug.detail(healthy) == ""
