import itertools
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime

import pytest

from shipmate.domain.errors import ShipmateError
from shipmate.domain.promotion import (
    APP_STATUS,
    FINISHED,
    InvalidTransition,
    Promotion,
    State,
    failure_message,
    revert_failed,
    transition,
)

ALLOWED = {
    (State.RUNNING, State.PENDING),
    (State.PENDING, State.UPDATING),
    (State.PENDING, State.ERROR),
    (State.UPDATING, State.RUNNING),
    (State.UPDATING, State.DEADLINE),
    (State.UPDATING, State.ERROR),
    (State.UPDATING, State.CANARY),  # a canary is serving its share
    (State.CANARY, State.UPDATING),  # --continue
    (State.CANARY, State.ERROR),  # --abort, or its watch failed
    (State.DEADLINE, State.ROLLBACK),
    (State.ERROR, State.ROLLBACK),
    (State.ROLLBACK, State.REVERTED),
    (State.ROLLBACK, State.FAILURE),
}
FORBIDDEN = sorted(set(itertools.product(State, State)) - ALLOWED)


def test_state_values_are_the_event_words():
    assert [s.value for s in State] == [
        "Running",
        "Pending",
        "Updating",
        "Canary",
        "Deadline",
        "Error",
        "Rollback",
        "Reverted",
        "Failure",
    ]
    assert f"{State.RUNNING}" == "Running"


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED))
def test_allowed_transitions_return_the_event_message(current, new):
    assert transition(current, new) == f"Status: {current.value} => {new.value}"


def test_the_spec_example_message():
    assert transition(State.RUNNING, State.PENDING) == "Status: Running => Pending"


@pytest.mark.parametrize(("current", "new"), FORBIDDEN)
def test_every_other_transition_is_refused(current, new):
    with pytest.raises(InvalidTransition) as raised:
        transition(current, new)
    message = str(raised.value)
    assert f"{current.value} => {new.value}" in message
    assert "\n" not in message
    assert isinstance(raised.value, ShipmateError)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (State.RUNNING, State.UPDATING),
        (State.RUNNING, State.RUNNING),
        (State.PENDING, State.RUNNING),
        (State.PENDING, State.REVERTED),
        (State.UPDATING, State.ROLLBACK),
        (State.DEADLINE, State.REVERTED),
        (State.REVERTED, State.RUNNING),
        (State.FAILURE, State.ROLLBACK),
    ],
)
def test_notable_forbidden_transitions(current, new):
    assert (current, new) in FORBIDDEN
    with pytest.raises(InvalidTransition):
        transition(current, new)


def test_final_states_say_so():
    with pytest.raises(InvalidTransition, match="Reverted is final"):
        transition(State.REVERTED, State.PENDING)


CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = datetime(2026, 1, 2, 3, 5, 0, tzinfo=UTC)


def make(state: State = State.RUNNING, **fields: object) -> Promotion:
    return Promotion(
        id="PABCDEFGHI",
        app="myapp",
        release_id="RZYXWVUTSR",
        previous_release_id="RCDEFGHIJK",
        created_at=CREATED,
        state=state,
        **fields,  # type: ignore[arg-type]
    )


def through(p: Promotion, *states: State, reason: str | None = None) -> Promotion:
    for state in states:
        p = p.advance(state, reason, now=LATER)
    return p


def test_a_new_promotion_is_running_and_not_finished():
    p = make()
    assert p.state is State.RUNNING
    assert p.history == [State.RUNNING]
    assert not p.finished
    assert not p.succeeded
    assert p.outcome is None
    assert p.app_status == "running"


def test_a_recorded_promotion_starts_pending_and_the_app_is_updating():
    p = make(State.PENDING)
    assert p.history == [State.PENDING]
    assert not p.finished and p.app_status == "updating"


def test_advance_returns_a_new_promotion_and_changes_none():
    p = make(State.PENDING)
    q = p.advance(State.UPDATING)
    assert (p.state, p.history) == (State.PENDING, [State.PENDING])
    assert (q.state, q.history) == (State.UPDATING, [State.PENDING, State.UPDATING])
    assert q.finished_at is None
    with pytest.raises(FrozenInstanceError):
        q.state = State.RUNNING  # type: ignore[misc]


def test_a_successful_promotion():
    p = through(make(State.PENDING), State.UPDATING, State.RUNNING)
    assert p.history == [State.PENDING, State.UPDATING, State.RUNNING]
    assert p.finished
    assert p.succeeded
    assert p.finished_at == LATER
    assert p.outcome == "succeeded"
    assert p.app_status == "running"
    with pytest.raises(ValueError):
        failure_message(p)


def test_finishing_stamps_the_current_time_by_default():
    p = make(State.UPDATING).advance(State.RUNNING)
    assert p.finished_at is not None and p.finished_at > CREATED


def test_a_promotion_past_its_deadline_is_reverted():
    reason = "deadline exceeded: web-rzyxwvutsr-ab12c never became healthy"
    p = make(State.PENDING)
    assert p.app_status == "updating"
    p = p.advance(State.UPDATING)
    assert p.app_status == "updating"
    assert p.rollback_path(State.DEADLINE) == [State.DEADLINE, State.ROLLBACK]
    p = p.advance(State.DEADLINE, reason=reason)
    assert p.app_status == "rollback"
    assert not p.finished and p.finished_at is None
    assert p.rollback_path(State.DEADLINE) == [State.ROLLBACK]
    p = p.advance(State.ROLLBACK)
    assert p.app_status == "rollback"
    assert p.rollback_path(State.DEADLINE) == []
    p = p.advance(State.REVERTED, now=LATER)
    assert p.finished and p.finished_at == LATER
    assert not p.succeeded
    assert p.outcome == "reverted"
    assert p.app_status == "running"
    assert p.reason == reason
    assert failure_message(p) == f"rollback: {reason} (run shipmate deploy-debug)"


def test_a_failed_release_phase_reverts_without_updating():
    p = make(State.PENDING)
    path = p.rollback_path(State.ERROR)
    assert path == [State.ERROR, State.ROLLBACK]
    p = through(p, *path, reason="release command exited 1")
    p = p.advance(State.REVERTED)
    assert p.history == [State.PENDING, State.ERROR, State.ROLLBACK, State.REVERTED]
    assert failure_message(p) == ("rollback: release command exited 1 (run shipmate deploy-debug)")


def test_a_pending_promotion_cannot_miss_a_deadline():
    p = make(State.PENDING)
    with pytest.raises(InvalidTransition, match="Pending => Deadline"):
        through(p, *p.rollback_path(State.DEADLINE))


def test_only_deadline_and_error_are_failures():
    with pytest.raises(ValueError, match="not Running"):
        make(State.UPDATING).rollback_path(State.RUNNING)


@pytest.mark.parametrize("state", [State.RUNNING, State.REVERTED, State.FAILURE])
def test_a_promotion_not_in_progress_cannot_be_reverted(state):
    with pytest.raises(InvalidTransition, match="it is not in progress"):
        make(state).rollback_path(State.ERROR)


def test_a_failed_revert():
    p = through(make(State.PENDING), State.UPDATING, State.ERROR, State.ROLLBACK)
    p = p.advance(State.FAILURE, reason=revert_failed("web-x exited 3", "web-y exited 1"))
    assert p.reason == "web-x exited 3; the revert failed too: web-y exited 1"
    assert p.finished
    assert not p.succeeded
    assert p.outcome == "failed"
    assert p.app_status == "running"
    assert (
        failure_message(p)
        == "rollback failed: web-x exited 3; the revert failed too: web-y exited 1 "
        "(run shipmate deploy-debug)"
    )


def test_failure_message_without_reason():
    p = through(make(), State.PENDING, State.UPDATING, State.ERROR, State.ROLLBACK, State.REVERTED)
    assert failure_message(p) == "rollback (run shipmate deploy-debug)"


def test_advance_keeps_the_reason_when_none_is_given():
    p = through(make(State.PENDING), State.UPDATING)
    p = p.advance(State.ERROR, reason="web-rzyxwvutsr-ab12c exited 3")
    p = p.advance(State.ROLLBACK)
    assert p.reason == "web-rzyxwvutsr-ab12c exited 3"


def test_a_refused_advance_raises():
    p = make()
    with pytest.raises(InvalidTransition):
        p.advance(State.UPDATING)
    assert p.state is State.RUNNING
    assert p.history == [State.RUNNING]


def test_a_promotion_loaded_mid_way_keeps_its_history():
    p = make(State.RUNNING, history=[State.PENDING, State.UPDATING, State.RUNNING])
    assert p.succeeded


@pytest.mark.parametrize("state", list(State))
def test_every_state_has_an_app_status(state):
    assert make(state).app_status in {"updating", "rollback", "running"}
    assert APP_STATUS[state] == make(state).app_status


def test_finished_states():
    assert frozenset({State.REVERTED, State.FAILURE}) == FINISHED


def test_a_canary_reverts_through_error_and_rollback():
    p = Promotion("P", "a", "R2", "R1", datetime(2026, 1, 1, tzinfo=UTC), state=State.CANARY)
    assert p.rollback_path(State.ERROR) == [State.ERROR, State.ROLLBACK]
    assert p.app_status == "updating" and not p.finished
