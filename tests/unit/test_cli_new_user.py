"""Issue 10's rough edges of the CLI, over a mock rack: what a terminal shows, what is asked.

As in test_cli_error_codes.py, click's CliRunner drives the CLI and an httpx.MockTransport
answers for the rack, so these run without one (and can pretend to be a terminal).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

import shipmate
from shipmate import lifecycle
from shipmate.cli import output
from shipmate.cli.client import Client
from shipmate.cli.main import cli

RELEASE = "RNEWAAAAAA"
PROMOTION = "PAAAAAAAAA"
Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


@dataclass
class MockRack:
    answers: dict[tuple[str, str], list[Answer]]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.answers.get((request.method, request.url.path))
        if not queue:
            return httpx.Response(404, json={"error": "not scripted", "code": "not_found"})
        answer = queue.pop(0)
        return answer(request) if callable(answer) else answer


@pytest.fixture(autouse=True)
def _no_open_line() -> Iterator[None]:
    yield
    output._line_open = False


@pytest.fixture
def mock_rack(monkeypatch: pytest.MonkeyPatch) -> Callable[..., MockRack]:
    def install(answers: dict[tuple[str, str], list[Answer]]) -> MockRack:
        rack = MockRack(answers)
        transport = httpx.MockTransport(rack)
        monkeypatch.setattr(
            Client, "from_env", classmethod(lambda cls: cls("http://rack.test", "t", transport))
        )
        return rack

    return install


def _run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def _sse(*events: tuple[str, Any]) -> httpx.Response:
    text = "".join(f"event: {kind}\ndata: {json.dumps(data)}\n\n" for kind, data in events)
    return httpx.Response(200, text=text, headers={"Content-Type": "text/event-stream"})


def _started(release: str = RELEASE) -> httpx.Response:
    body = {
        "release": {"id": release},
        "promotion": {"id": PROMOTION, "release": release},
        "warnings": [],
    }
    return httpx.Response(202, json=body)


# 10
def test_an_error_after_progress_starts_a_new_line_on_a_terminal(
    mock_rack: Callable[..., MockRack], monkeypatch: pytest.MonkeyPatch
) -> None:
    conflict = {"error": "app myapp already exists", "code": "conflict"}
    mock_rack({("POST", "/apps"): [httpx.Response(409, json=conflict)] * 2})
    monkeypatch.setattr(output, "stdout_is_terminal", lambda: True)
    result = _run("apps", "create", "myapp")
    assert result.exit_code == 1
    assert result.stdout == "Creating myapp...\n"
    assert result.stderr == "ERROR: app myapp already exists\n"
    assert result.output == "Creating myapp...\nERROR: app myapp already exists\n"
    # Piped, stdout stays as it always was.
    monkeypatch.setattr(output, "stdout_is_terminal", lambda: False)
    result = _run("apps", "create", "myapp")
    assert (result.stdout, result.stderr) == (
        "Creating myapp...",
        "ERROR: app myapp already exists\n",
    )


# 11
def test_promote_of_another_apps_release_prints_nothing_before_the_error(
    mock_rack: Callable[..., MockRack],
) -> None:
    missing = {"error": f"no such release: {RELEASE} (app myapp)", "code": "not_found"}
    mock_rack(
        {("POST", f"/apps/myapp/releases/{RELEASE}/promote"): [httpx.Response(404, json=missing)]}
    )
    result = _run("releases", "promote", RELEASE, "-a", "myapp")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"ERROR: no such release: {RELEASE} (app myapp)\n"


# 12
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("releases", "rollback", "", "-a", "myapp"),
            "a release id is required: see `shipmate releases`",
        ),
        (
            ("releases", "rollback", RELEASE, "-a", "../x"),
            "invalid app name '../x': use 1-30 characters a-z, 0-9 and -, starting with a letter",
        ),
        (
            ("releases", "info", "R1", "-a", "myapp"),
            "invalid release id 'R1': a release id is R and 9 capital letters, "
            "see `shipmate releases`",
        ),
        (("builds", "info", "", "-a", "myapp"), "a build id is required: see `shipmate builds`"),
        (
            ("apps", "create", "My_App"),
            "invalid app name 'My_App': use 1-30 characters a-z, 0-9 and -, starting with a letter",
        ),
    ],
)
def test_bad_names_and_ids_are_refused_before_any_request(
    mock_rack: Callable[..., MockRack], args: tuple[str, ...], expected: str
) -> None:
    rack = mock_rack({})
    result = _run(*args)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"ERROR: {expected}\n")
    assert rack.requests == []


# 18
def test_ps_lists_newest_first(mock_rack: Callable[..., MockRack]) -> None:
    def process(pid: str, started: str) -> dict[str, Any]:
        return {
            "id": pid,
            "service": "web",
            "status": "running",
            "release": RELEASE,
            "started": started,
            "command": "python3 app.py",
        }

    found = [process("web-old", "2026-01-01T00:00:00Z"), process("web-new", "2026-01-01T00:01:00Z")]
    mock_rack({("GET", "/apps/myapp/processes"): [httpx.Response(200, json=found)] * 2})
    table = _run("ps", "-a", "myapp").stdout.splitlines()
    assert [line.split()[0] for line in table[1:]] == ["web-new", "web-old"]
    listed = json.loads(_run("ps", "-a", "myapp", "--json").stdout)
    assert [p["id"] for p in listed] == ["web-new", "web-old"]


def test_builds_info_prints_whole_seconds(mock_rack: Callable[..., MockRack]) -> None:
    build = {
        "id": "BAAAAAAAAA",
        "status": "complete",
        "release": RELEASE,
        "description": "",
        "started": "2026-01-01T00:00:00.123456Z",
        "ended": "2026-01-01T00:00:03.5Z",
        "error": None,
    }
    mock_rack({("GET", "/apps/myapp/builds/BAAAAAAAAA"): [httpx.Response(200, json=build)]})
    out = _run("builds", "info", "BAAAAAAAAA", "-a", "myapp").stdout
    assert "Started      2026-01-01T00:00:00Z\n" in out


# 19
def test_logs_follow_short_option_tail_and_json(mock_rack: Callable[..., MockRack]) -> None:
    line = {
        "line": "2026-01-01T00:00:00Z service/web/web-1 hi",
        "time": "2026-01-01T00:00:00Z",
        "source": "service/web/web-1",
        "message": "hi",
    }
    rack = mock_rack({("GET", "/apps/myapp/logs"): [_sse(("log", line))] * 2})
    assert _run("logs", "-a", "myapp", "-f", "--tail", "5").stdout == line["line"] + "\n"
    query = rack.requests[0].url.params
    assert (query["follow"], query["tail"]) == ("true", "5")
    out = _run("logs", "-a", "myapp", "--no-follow", "--json").stdout
    assert [json.loads(x) for x in out.splitlines()] == [line]
    assert rack.requests[1].url.params["follow"] == "false"


def test_ctrl_c_while_following_a_promotion_says_it_goes_on(
    mock_rack: Callable[..., MockRack],
) -> None:
    def interrupted(_: httpx.Request) -> httpx.Response:
        raise KeyboardInterrupt

    mock_rack(
        {
            ("POST", f"/apps/myapp/releases/{RELEASE}/promote"): [_started()],
            ("GET", f"/apps/myapp/promotions/{PROMOTION}/events"): [interrupted],
        }
    )
    result = _run("releases", "promote", RELEASE, "-a", "myapp")
    assert result.exit_code == 130
    assert result.stdout == f"Promoting {RELEASE}...\n"
    assert result.stderr == (
        f"Interrupted: the promotion of {RELEASE} goes on in the rack; follow it with "
        "`shipmate logs -a myapp -f`, cancel it with `shipmate apps cancel -a myapp`\n"
    )


# 20, 24
def test_rack_json_and_a_stopped_rack(
    mock_rack: Callable[..., MockRack], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SHIPMATE_RACK", raising=False)
    monkeypatch.setenv("SHIPMATE_HOME", str(tmp_path / "myrack"))
    info = {
        "name": "myrack",
        "provider": "local",
        "router": "http://127.0.0.1:8080",
        "status": "running",
        "version": "0",
    }
    mock_rack({("GET", "/rack"): [httpx.Response(200, json=info)]})
    monkeypatch.setattr(lifecycle, "running_pid", lambda settings: 4242)
    assert json.loads(_run("rack", "--json").stdout) == info
    monkeypatch.setattr(lifecycle, "running_pid", lambda settings: None)
    result = _run("rack")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Name      myrack\n"
        "Provider  local\n"
        "Router    not running\n"
        "Status    stopped\n"
        f"Version   {shipmate.__version__}\n"
    )
    assert result.stderr == (
        "The rack's API is stopped; app processes still running: none. "
        "Start it with `shipmate rack start --detach`.\n"
    )
    assert json.loads(_run("rack", "--json").stdout)["status"] == "stopped"


# 25
def test_env_set_from_stdin_skips_comments_and_export(mock_rack: Callable[..., MockRack]) -> None:
    changed = {"env": {}, "release": {"id": RELEASE}}
    rack = mock_rack({("POST", "/apps/myapp/environment"): [httpx.Response(200, json=changed)]})
    result = _run("env", "set", "-", "-a", "myapp", input='# a comment\n\nexport A=1\nB="x y"\n')
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Setting A, B... OK\nRelease: {RELEASE}\n"
    assert json.loads(rack.requests[0].content)["set"] == ["A=1", "B=x y"]


def test_env_edit_sends_one_change(
    mock_rack: Callable[..., MockRack], monkeypatch: pytest.MonkeyPatch
) -> None:
    current = {"env": {"A": "1", "B": "2", "Q": '"quoted"'}}
    changed = {"env": {}, "release": {"id": RELEASE}}
    rack = mock_rack(
        {
            ("GET", "/apps/myapp/environment"): [httpx.Response(200, json=current)] * 2,
            ("POST", "/apps/myapp/environment"): [httpx.Response(200, json=changed)],
        }
    )
    shown: list[str] = []

    def edit(text: str, **_: object) -> str:
        shown.append(text)
        return text.replace("A=1", "A=10").replace("B=2\n", "") + "C=3\n"

    monkeypatch.setattr("click.edit", edit)
    result = _run("env", "edit", "-a", "myapp")
    assert result.stdout == f"Changing A, B, C... OK\nRelease: {RELEASE}\n", result.output
    assert shown[0].endswith('A=1\nB=2\nQ=""quoted""\n')
    body = json.loads(rack.requests[-1].content)
    assert (body["set"], body["unset"], body["replace"]) == (["A=10", "C=3"], ["B"], False)
    # Saved unchanged (or not saved): nothing is sent.
    monkeypatch.setattr("click.edit", lambda text, **_: text)
    result = _run("env", "edit", "-a", "myapp")
    assert "no release created" in result.stdout
    assert [r.method for r in rack.requests] == ["GET", "POST", "GET"]


def test_no_wait_returns_once_the_promotion_is_recorded(
    mock_rack: Callable[..., MockRack],
) -> None:
    rack = mock_rack({("POST", "/apps/myapp/restart"): [_started()]})
    result = _run("restart", "-a", "myapp", "--no-wait")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"Promotion {PROMOTION} of {RELEASE} started: follow it with "
        f"`shipmate logs -a myapp -f`; `shipmate releases info {RELEASE} -a myapp` shows "
        "how it ended\n"
    )
    assert [r.url.path for r in rack.requests] == ["/apps/myapp/restart"]
