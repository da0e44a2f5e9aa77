"""The CLI decides on an error's `code`, never on its text: click's CliRunner over a mock rack.

As Convox's pkg/cli tests stub the provider and assert exact output, these stub the rack's HTTP
API with an httpx.MockTransport and assert stdout, stderr and the requests the CLI made.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from shipmate.cli.client import Client
from shipmate.cli.main import cli

RUNNING = "RRUNNINGAA"
TARGET = "RTARGETAAA"
COPY = "RCOPYAAAAA"


@dataclass
class MockRack:
    """Answers each request with the next answer scripted for its method and path."""

    answers: dict[tuple[str, str], list[httpx.Response]]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.answers.get((request.method, request.url.path))
        if not queue:
            return httpx.Response(404, json={"error": "not scripted", "code": "not_found"})
        return queue.pop(0)

    def bodies(self, method: str, path: str) -> list[dict[str, Any]]:
        return [
            json.loads(r.content) for r in self.requests if (r.method, r.url.path) == (method, path)
        ]


@pytest.fixture
def mock_rack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., MockRack]]:
    def install(answers: dict[tuple[str, str], list[httpx.Response]]) -> MockRack:
        rack = MockRack(answers)
        transport = httpx.MockTransport(rack)
        monkeypatch.setattr(
            Client, "from_env", classmethod(lambda cls: cls("http://rack.test", "t", transport))
        )
        return rack

    yield install


def _promotion(release: str) -> dict[str, Any]:
    return {
        "id": "PAAAAAAAAA",
        "app": "myapp",
        "release": release,
        "previous_release": RUNNING,
        "kind": "rollback",
        "state": "Running",
        "history": ["Running", "Pending", "Updating", "Running"],
        "reason": None,
        "created": "2026-01-01T00:00:00Z",
        "finished": "2026-01-01T00:00:05Z",
        "succeeded": True,
        "created_by": "owner",
    }


def _started() -> httpx.Response:
    release = {
        "id": COPY,
        "app": "myapp",
        "number": 3,
        "build": "BAAAAAAAAA",
        "env": {},
        "description": f"rollback to {TARGET}",
        "copied_from": TARGET,
        "created": "2026-01-01T00:00:00Z",
        "active": False,
    }
    return httpx.Response(
        202, json={"release": release, "promotion": _promotion(COPY), "warnings": []}
    )


def _events() -> httpx.Response:
    line = "2026-01-01T00:00:01Z system/local/atom/app Status: Running => Pending"
    stream = (
        f"event: event\ndata: {json.dumps({'line': line})}\n\n"
        f"event: done\ndata: {json.dumps(_promotion(COPY))}\n\n"
    )
    return httpx.Response(200, text=stream, headers={"Content-Type": "text/event-stream"})


def _busy(message: str, code: str = "app_busy") -> httpx.Response:
    body = {"error": message, "code": code, "details": {"app": "myapp", "release": RUNNING}}
    return httpx.Response(409, json=body)


ROLLBACK = ("POST", f"/apps/myapp/releases/{TARGET}/rollback")
EVENTS = ("GET", "/apps/myapp/promotions/PAAAAAAAAA/events")


def _rollback(*extra: str) -> Any:
    return CliRunner().invoke(cli, ["releases", "rollback", TARGET, "-a", "myapp", *extra])


def test_wait_for_lock_waits_on_app_busy_whatever_the_message_says(
    mock_rack: Callable[..., MockRack],
) -> None:
    # Not the English text the CLI once matched: only the code says the app is busy.
    rack = mock_rack({ROLLBACK: [_busy("l'app est occupée"), _started()], EVENTS: [_events()]})
    result = _rollback("--wait-for-lock")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"Waiting for the promotion of {RUNNING} to finish...\n"
        f"Rolling back to {TARGET}...\n"
        "2026-01-01T00:00:01Z system/local/atom/app Status: Running => Pending\n"
        f"OK, {COPY}\n"
    )
    assert rack.bodies(*ROLLBACK) == [{"wait": None}, {"wait": None, "wait_for_lock": True}]


def test_a_busy_looking_message_with_another_code_is_not_waited_on(
    mock_rack: Callable[..., MockRack],
) -> None:
    text = f"app myapp is updating (promotion of {RUNNING} in progress)"
    rack = mock_rack({ROLLBACK: [_busy(text, code="conflict"), _started()]})
    result = _rollback("--wait-for-lock")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"ERROR: {text}\n"
    assert len(rack.bodies(*ROLLBACK)) == 1


def test_app_busy_without_wait_for_lock_is_the_error_line(
    mock_rack: Callable[..., MockRack],
) -> None:
    rack = mock_rack({ROLLBACK: [_busy("app myapp is updating (whatever)"), _started()]})
    result = _rollback()
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "ERROR: app myapp is updating (whatever)\n"
    assert len(rack.bodies(*ROLLBACK)) == 1


def test_an_error_body_without_a_code_is_still_one_line(
    mock_rack: Callable[..., MockRack],
) -> None:
    mock_rack(
        {
            ROLLBACK: [httpx.Response(409, json={"error": "busy, says an older rack"})],
            ("GET", "/apps"): [httpx.Response(502, text="<html>bad gateway</html>")],
        }
    )
    result = _rollback("--wait-for-lock")
    assert (result.exit_code, result.stderr) == (1, "ERROR: busy, says an older rack\n")
    result = CliRunner().invoke(cli, ["apps"])
    assert (result.exit_code, result.stderr) == (1, "ERROR: the rack answered 502 Bad Gateway\n")
