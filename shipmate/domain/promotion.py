"""The app-level promotion state machine (SPEC section 4).

Each transition is reported to users as a `system/<runtime>/atom/app` event whose message is
`Status: <from> => <to>`. A promotion starts in Running (the app as it was), and ends either
back in Running (success: the new release is active), in Reverted (the previous release is
active again) or in Failure (even the revert failed).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from shipmate.domain.errors import ShipmateError


class State(enum.StrEnum):
    RUNNING = "Running"
    PENDING = "Pending"
    UPDATING = "Updating"
    DEADLINE = "Deadline"
    ERROR = "Error"
    ROLLBACK = "Rollback"
    REVERTED = "Reverted"
    FAILURE = "Failure"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.RUNNING: frozenset({State.PENDING}),
    # Pending -> Error: a release-phase command failed before any process was replaced.
    State.PENDING: frozenset({State.UPDATING, State.ERROR}),
    State.UPDATING: frozenset({State.RUNNING, State.DEADLINE, State.ERROR}),
    State.DEADLINE: frozenset({State.ROLLBACK}),
    State.ERROR: frozenset({State.ROLLBACK}),
    State.ROLLBACK: frozenset({State.REVERTED, State.FAILURE}),
    State.REVERTED: frozenset(),
    State.FAILURE: frozenset(),
}

# States a promotion never leaves. Running is also where a successful promotion ends, but it is
# where every promotion starts too, so it is final only once the promotion has left it.
FINISHED = frozenset({State.REVERTED, State.FAILURE})

_APP_STATUS: dict[State, str] = {
    State.PENDING: "updating",
    State.UPDATING: "updating",
    State.DEADLINE: "rollback",
    State.ERROR: "rollback",
    State.ROLLBACK: "rollback",
    State.RUNNING: "running",
    State.REVERTED: "running",
    State.FAILURE: "running",
}


class InvalidTransition(ShipmateError):
    """A state change the promotion state machine does not allow."""


def transition(current: State, new: State) -> str:
    """Validate `current => new` and return its event message, `Status: Running => Pending`."""
    allowed = TRANSITIONS[current]
    if new not in allowed:
        if allowed:
            options = ", ".join(sorted(allowed))
            hint = f"from {current} a promotion can only go to {options}"
        else:
            hint = f"{current} is final: start a new promotion instead"
        raise InvalidTransition(f"cannot change promotion status {current} => {new}: {hint}")
    return f"Status: {current} => {new}"


@dataclass
class Promotion:
    """One promotion of one release, as a pure record; persisting it is the caller's job.

    `history` lists every state the promotion has been in, oldest first, starting with its
    initial state. Persist it with the promotion: `finished` relies on it to tell the Running
    a promotion starts from from the Running it ends in.
    """

    id: str
    app: str
    release_id: str
    previous_release_id: str | None
    state: State = State.RUNNING
    reason: str | None = None
    history: list[State] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append(self.state)

    def advance(self, new: State, reason: str | None = None) -> str:
        """Move to `new` and return the event message; `reason` (if given) records why."""
        message = transition(self.state, new)
        self.state = new
        self.history.append(new)
        if reason is not None:
            self.reason = reason
        return message

    @property
    def finished(self) -> bool:
        """True once nothing more will happen to this promotion."""
        if self.state in FINISHED:
            return True
        return self.state is State.RUNNING and any(s is not State.RUNNING for s in self.history)

    @property
    def succeeded(self) -> bool:
        """True when the promotion ended with its release active."""
        return self.state is State.RUNNING and self.finished

    @property
    def app_status(self) -> str:
        """The app status (SPEC section 3) this promotion implies."""
        return _APP_STATUS[self.state]


def failure_message(promotion: Promotion) -> str:
    """The CLI's last line for a failed promotion (printed after `ERROR: `)."""
    if promotion.succeeded:
        raise ValueError(f"promotion {promotion.id} succeeded; it has no failure message")
    prefix = "rollback failed" if promotion.state is State.FAILURE else "rollback"
    if promotion.reason:
        return f"{prefix}: {promotion.reason}"
    return prefix
