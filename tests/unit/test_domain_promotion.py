import itertools

import pytest

from shipmate.domain.errors import ShipmateError
from shipmate.domain.promotion import (
    FINISHED,
    InvalidTransition,
    Promotion,
    State,
    failure_message,
    transition,
)

ALLOWED = {
    (State.RUNNING, State.PENDING),
    (State.PENDING, State.UPDATING),
    (State.PENDING, State.ERROR),
    (State.UPDATING, State.RUNNING),
    (State.UPDATING, State.DEADLINE),
    (State.UPDATING, State.ERROR),
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


def make() -> Promotion:
    return Promotion(
        id="PABCDEFGHI", app="myapp", release_id="RZYXWVUTSR", previous_release_id="RCDEFGHIJK"
    )


def test_a_new_promotion_is_running_and_not_finished():
    p = make()
    assert p.state is State.RUNNING
    assert p.history == [State.RUNNING]
    assert not p.finished
    assert not p.succeeded
    assert p.app_status == "running"


def test_a_successful_promotion():
    p = make()
    messages = [p.advance(State.PENDING), p.advance(State.UPDATING), p.advance(State.RUNNING)]
    assert messages == [
        "Status: Running => Pending",
        "Status: Pending => Updating",
        "Status: Updating => Running",
    ]
    assert p.history == [State.RUNNING, State.PENDING, State.UPDATING, State.RUNNING]
    assert p.finished
    assert p.succeeded
    assert p.app_status == "running"
    with pytest.raises(ValueError):
        failure_message(p)


def test_a_promotion_past_its_deadline_is_reverted():
    p = make()
    p.advance(State.PENDING)
    assert p.app_status == "updating"
    p.advance(State.UPDATING)
    assert p.app_status == "updating"
    p.advance(State.DEADLINE, reason="deadline exceeded: web-rzyxwvutsr-ab12c never became healthy")
    assert p.app_status == "rollback"
    assert not p.finished
    p.advance(State.ROLLBACK)
    assert p.app_status == "rollback"
    p.advance(State.REVERTED)
    assert p.finished
    assert not p.succeeded
    assert p.app_status == "running"
    assert p.reason == "deadline exceeded: web-rzyxwvutsr-ab12c never became healthy"
    assert failure_message(p) == (
        "rollback: deadline exceeded: web-rzyxwvutsr-ab12c never became healthy"
    )


def test_a_failed_release_phase_reverts_without_updating():
    p = make()
    p.advance(State.PENDING)
    p.advance(State.ERROR, reason="release command exited 1")
    p.advance(State.ROLLBACK)
    p.advance(State.REVERTED)
    assert p.history == [State.RUNNING, State.PENDING, State.ERROR, State.ROLLBACK, State.REVERTED]
    assert failure_message(p) == "rollback: release command exited 1"


def test_a_failed_revert():
    p = make()
    for state in (State.PENDING, State.UPDATING, State.ERROR, State.ROLLBACK, State.FAILURE):
        p.advance(state)
    p.reason = "web-rcdefghijk-x1y2z exited 1"
    assert p.finished
    assert not p.succeeded
    assert p.app_status == "running"
    assert failure_message(p) == "rollback failed: web-rcdefghijk-x1y2z exited 1"


def test_failure_message_without_reason():
    p = make()
    for state in (State.PENDING, State.UPDATING, State.ERROR, State.ROLLBACK, State.REVERTED):
        p.advance(state)
    assert failure_message(p) == "rollback"


def test_advance_keeps_the_reason_when_none_is_given():
    p = make()
    p.advance(State.PENDING)
    p.advance(State.UPDATING)
    p.advance(State.ERROR, reason="web-rzyxwvutsr-ab12c exited 3")
    p.advance(State.ROLLBACK)
    assert p.reason == "web-rzyxwvutsr-ab12c exited 3"


def test_a_refused_advance_changes_nothing():
    p = make()
    with pytest.raises(InvalidTransition):
        p.advance(State.UPDATING)
    assert p.state is State.RUNNING
    assert p.history == [State.RUNNING]


def test_a_promotion_loaded_mid_way_keeps_its_history():
    p = Promotion(
        id="PABCDEFGHI",
        app="myapp",
        release_id="RZYXWVUTSR",
        previous_release_id=None,
        state=State.RUNNING,
        history=[State.RUNNING, State.PENDING, State.UPDATING, State.RUNNING],
    )
    assert p.succeeded


def test_finished_states():
    assert frozenset({State.REVERTED, State.FAILURE}) == FINISHED
