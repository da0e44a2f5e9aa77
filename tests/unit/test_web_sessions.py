"""Console sessions and the lines the console ends a promotion with."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shipmate.domain.promotion import Promotion, State, failure_message
from shipmate.web import sessions
from shipmate.web.timeline import final_line

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_session_is_random_and_holds_no_token() -> None:
    store = sessions.Sessions()
    a, b = store.open("alice"), store.open("alice")
    assert a.id != b.id and a.csrf != b.csrf and len(a.id) >= 43
    assert store.get(a.id) is a and store.get("forged") is None and store.get(None) is None
    assert a.csrf_ok(a.csrf) and not a.csrf_ok(b.csrf) and not a.csrf_ok(None)
    store.close(a.id)
    assert store.get(a.id) is None


def test_idle_sessions_expire_and_are_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(sessions.time, "monotonic", lambda: now[0])
    store = sessions.Sessions()
    old = store.open("alice")
    now[0] += sessions.IDLE_SECONDS + 1
    store.open("bob")
    assert old.id not in store._by_id  # pruned at the next login
    idle = store.open("carol")
    now[0] += sessions.IDLE_SECONDS + 1
    assert store.get(idle.id) is None


def promotion(
    kind: str, state: State, finished: bool = True, reason: str | None = None
) -> Promotion:
    return Promotion(
        id="PAAAAAAAAA",
        app="shop",
        release_id="RBBBBBBBBB",
        previous_release_id="RCCCCCCCCC",
        created_at=T0,
        kind=kind,
        state=state,
        reason=reason,
        finished_at=T0 if finished else None,
        history=[State.PENDING, State.UPDATING, state],
    )


def test_final_lines_are_the_clis() -> None:
    assert final_line(promotion("rollback", State.RUNNING)) == "OK, RBBBBBBBBB"
    assert final_line(promotion("promote", State.RUNNING)) == "OK"
    assert final_line(promotion("promote", State.UPDATING, finished=False)) is None
    reverted = promotion("promote", State.REVERTED, reason="web: exited with code 1")
    assert final_line(reverted) == f"ERROR: {failure_message(reverted)}"
    assert final_line(reverted).startswith("ERROR: rollback: web: exited with code 1")
