"""deploy-debug's judgement of a process: its state, the hint, its start-up output, crashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from shipmate.domain.diagnosis import (
    ProcessState,
    before,
    classify,
    fold_crashes,
    hint,
    missing_command,
    missing_key,
    parse_check,
    parse_output_line,
)

T0 = datetime(2026, 1, 15, 14, 30, 0, tzinfo=UTC)


def state(**facts: object) -> ProcessState:
    given: dict[str, object] = {
        "status": "running",
        "healthy": False,
        "stopped": False,
        "oom_killed": False,
        "health_problem": None,
        "in_grace": False,
        "crashes": 0,
    }
    given.update(facts)
    return classify(**given)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"healthy": True}, ProcessState.HEALTHY),
        ({}, ProcessState.STARTING),
        ({"health_problem": "GET /: ConnectError", "in_grace": True}, ProcessState.STARTING),
        ({"health_problem": "GET /: HTTP 404"}, ProcessState.UNHEALTHY),
        # Stopped by a revert while never healthy: it failed its checks until the deadline.
        ({"status": "exited", "stopped": True, "health_problem": "x"}, ProcessState.UNHEALTHY),
        ({"status": "stopping", "stopped": True}, ProcessState.UNHEALTHY),
        ({"status": "exited", "stopped": True, "healthy": True}, ProcessState.STOPPED),
        ({"status": "exited", "crashes": 1}, ProcessState.EXITED),
        ({"status": "exited", "crashes": 3}, ProcessState.CRASH_LOOPING),
        # A replacement after crashes in a row, not healthy yet: the loop goes on.
        ({"status": "running", "crashes": 2}, ProcessState.CRASH_LOOPING),
        ({"status": "running", "crashes": 2, "healthy": True}, ProcessState.HEALTHY),
        ({"status": "exited", "oom_killed": True, "crashes": 4}, ProcessState.OOM_KILLED),
    ],
)
def test_classify(facts: dict[str, object], expected: ProcessState) -> None:
    assert state(**facts) is expected


def test_missing_key_from_a_traceback_or_a_message() -> None:
    assert missing_key(["Traceback (most recent call last):", "KeyError: 'DATABASE_URL'"]) == (
        "DATABASE_URL"
    )
    assert missing_key(['KeyError: "SOME_KEY"']) == "SOME_KEY"
    assert missing_key(["REDIS_URL is not set"]) == "REDIS_URL"
    assert missing_key(["KeyError: 3", "all fine"]) is None


def test_missing_command() -> None:
    assert missing_command(["/bin/sh: 1: exec: gunicorn: not found"], 127, "gunicorn a") == (
        "gunicorn"
    )
    assert missing_command(["bash: flask: command not found"], 127, "flask run") == "flask"
    assert missing_command([], 127, "uvicorn main:app") == "uvicorn"
    assert missing_command(["GET /x 404 not found"], 1, "python3 app.py") is None


def test_parse_check() -> None:
    assert parse_check("GET /health: HTTP 404") == ("/health", "HTTP 404")
    assert parse_check(None) is None


def words(found: str | None) -> str:
    assert found is not None
    return found


def test_hint_for_a_port_it_did_not_listen_on() -> None:
    found = hint(
        ProcessState.UNHEALTHY,
        app="a",
        output=["listening on 5000"],
        health_problem="GET /health: ConnectError",
        port=40111,
    )
    assert words(found).startswith(
        "it did not listen on $PORT (40111): make it bind 0.0.0.0:$PORT or 127.0.0.1:$PORT"
    )


def test_hint_for_a_health_path_that_answers_404() -> None:
    found = hint(ProcessState.UNHEALTHY, app="a", output=[], health_problem="GET /up: HTTP 404")
    assert words(found).startswith("its health path /up answered 404: serve /up")


def test_hint_for_other_check_results() -> None:
    slow = hint(ProcessState.UNHEALTHY, app="a", output=[], health_problem="GET /: ReadTimeout")
    assert "did not answer in time" in words(slow)
    failing = hint(ProcessState.UNHEALTHY, app="a", output=[], health_problem="GET /: HTTP 503")
    assert words(failing) == "its health path / answered 503: see its output"
    never = hint(ProcessState.UNHEALTHY, app="a", output=[])
    assert "not healthy by the promotion's deadline" in words(never)


def test_hint_for_a_missing_key_wins_over_the_exit() -> None:
    found = hint(ProcessState.EXITED, app="shop", output=["KeyError: 'SOME_KEY'"], exit_code=1)
    assert words(found).startswith(
        "its environment lacks SOME_KEY: `shipmate env set SOME_KEY=... --promote -a shop`"
    )


def test_hint_for_a_command_not_found_and_one_not_runnable() -> None:
    found = hint(
        ProcessState.CRASH_LOOPING,
        app="a",
        output=["/bin/sh: 1: exec: gunicorn: not found"],
        exit_code=127,
        command="gunicorn app:app",
    )
    assert words(found).startswith("its command was not found: gunicorn (exit code 127)")
    denied = hint(
        ProcessState.EXITED,
        app="a",
        output=["/bin/sh: 1: exec: ./run: Permission denied"],
        exit_code=126,
    )
    assert words(denied).startswith("its command could not be run: ./run (permission denied")


def test_hint_for_a_crash_and_for_the_oom_killer() -> None:
    crash = hint(ProcessState.EXITED, app="a", output=["boom"], exit_code=3)
    assert crash == "it exited with code 3 before it was ever healthy: its output above says why"
    later = hint(ProcessState.EXITED, app="a", output=[], exit_code=3, healthy=True)
    assert later == "it exited with code 3 after it had been healthy: it printed nothing"
    oom = hint(ProcessState.OOM_KILLED, app="a", output=[], memory_limit=64)
    assert words(oom).startswith("it went over its memory limit (64 MB): raise scale.memory")


@pytest.mark.parametrize(
    "fine", [ProcessState.HEALTHY, ProcessState.STOPPED, ProcessState.STARTING]
)
def test_no_hint_when_nothing_is_wrong(fine: ProcessState) -> None:
    assert hint(fine, app="a", output=["KeyError: 'X'"]) is None


def test_output_lines_before_it_was_healthy() -> None:
    assert parse_output_line("2026-01-15T14:30:00.250000Z hello world") == (
        T0 + timedelta(milliseconds=250),
        "hello world",
    )
    assert parse_output_line("garbage") is None
    lines = [(T0 + timedelta(seconds=i), f"line {i}") for i in range(10)]
    lines.insert(3, (T0 + timedelta(seconds=2.5), "   "))
    shown = before(lines, T0 + timedelta(seconds=5), 3)
    assert [t for _, t in shown] == ["line 2", "line 3", "line 4"]  # the blank one left out
    assert [t for _, t in before(lines, None, 2)] == ["line 8", "line 9"]
    assert before(lines, None, 0) == []


@dataclass(frozen=True)
class Rec:
    id: str
    started: int
    exited: int | None = None
    stopped: bool = False
    service: str = "web"
    release_id: str = "R1"

    @property
    def status(self) -> str:
        return "exited" if self.exited is not None else "running"

    @property
    def started_at(self) -> datetime:
        return T0 + timedelta(seconds=self.started)

    @property
    def exited_at(self) -> datetime | None:
        return None if self.exited is None else T0 + timedelta(seconds=self.exited)


def test_crashes_fold_into_the_process_that_replaced_them() -> None:
    a = Rec("a", 0, exited=1)
    b = Rec("b", 2, exited=3)
    c = Rec("c", 5)  # the replacement running now
    other = Rec("w", 0, service="worker")
    chains = {chain.process.id: chain for chain in fold_crashes([c, other, b, a])}
    assert set(chains) == {"c", "w"}
    assert chains["c"].replaced == (a, b) and chains["c"].crashes == 2
    assert chains["w"].replaced == () and chains["w"].crashes == 0


def test_a_sibling_started_with_it_is_not_its_replacement() -> None:
    a = Rec("a", 0, exited=1)
    b = Rec("b", 0)  # started with a, during the same rollout
    stopped = Rec("s", 0, exited=1, stopped=True)
    chains = fold_crashes([a, b, stopped])
    assert [(c.process.id, c.crashes) for c in chains] == [("a", 1), ("b", 0), ("s", 0)]
