"""The app-level promotion state machine (SPEC section 4), and the promotion record itself.

Each transition is reported to users as a `system/<runtime>/atom/app` event whose message is
`Status: <from> => <to>`. A promotion starts in Running (the app as it was), and ends either
back in Running (success: the new release is active), in Reverted (the previous release is
active again) or in Failure (even the revert failed).

`Promotion` is what the store keeps and returns, what the server drives (services.promotions
asks it for each transition and writes the result) and what the CLI rebuilds from the API to
word a failure: one record and one table of transitions and app statuses for all of them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shipmate.domain.errors import ShipmateError
from shipmate.domain.humanize import utcnow


class State(enum.StrEnum):
    RUNNING = "Running"
    PENDING = "Pending"
    UPDATING = "Updating"
    CANARY = "Canary"  # the new release serves a share of requests beside the old one
    DEADLINE = "Deadline"
    ERROR = "Error"
    ROLLBACK = "Rollback"
    REVERTED = "Reverted"
    FAILURE = "Failure"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.RUNNING: frozenset({State.PENDING}),
    # Pending -> Error: a release-phase command failed before any process was replaced.
    State.PENDING: frozenset({State.UPDATING, State.ERROR}),
    State.UPDATING: frozenset({State.RUNNING, State.CANARY, State.DEADLINE, State.ERROR}),
    # Canary -> Updating: `--continue` completes it; Error: `--abort` or a failed watch.
    State.CANARY: frozenset({State.UPDATING, State.ERROR}),
    State.DEADLINE: frozenset({State.ROLLBACK}),
    State.ERROR: frozenset({State.ROLLBACK}),
    State.ROLLBACK: frozenset({State.REVERTED, State.FAILURE}),
    State.REVERTED: frozenset(),
    State.FAILURE: frozenset(),
}

# States a promotion never leaves. Running is also where a successful promotion ends, but it is
# where every promotion starts too, so it is final only once the promotion has left it.
FINISHED = frozenset({State.REVERTED, State.FAILURE})

# How a finished promotion is named in the audit trail (`promotion.<outcome>`).
_OUTCOME: dict[State, str] = {
    State.RUNNING: "succeeded",
    State.REVERTED: "reverted",
    State.FAILURE: "failed",
}

# The app status (SPEC section 3) while its promotion is in each state.
APP_STATUS: dict[State, str] = {
    State.PENDING: "updating",
    State.UPDATING: "updating",
    State.CANARY: "updating",
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


@dataclass(frozen=True)
class Promotion:
    """One promotion of one release: the store's record and its state machine.

    Nothing here changes a promotion: `advance` returns the promotion after a transition, for
    the caller to persist. `history` lists every state the promotion has been in, oldest
    first, starting with its initial state (Pending for one the server records; the Running
    before it is implied). `finished` relies on it to tell the Running a promotion starts from
    from the Running it ends in.
    """

    id: str
    app: str
    release_id: str
    previous_release_id: str | None
    created_at: datetime
    kind: str = "promote"  # promote, rollback, scale, restart
    state: State = State.RUNNING
    reason: str | None = None
    finished_at: datetime | None = None
    history: list[State] = field(default_factory=list)
    created_by: str = ""  # name of the token that started it; "" before audit existed
    options: dict[str, Any] = field(default_factory=dict)  # counts of a scale, restarted services
    release_command: str | None = None  # the release-phase command it ran

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append(self.state)

    def advance(
        self, new: State, reason: str | None = None, now: datetime | None = None
    ) -> Promotion:
        """This promotion moved to `new` (raises InvalidTransition if it may not).

        `reason` (if given) records why; a transition that finishes the promotion stamps
        `finished_at` with `now` (default: the current time).
        """
        transition(self.state, new)
        moved = replace(
            self,
            state=new,
            reason=self.reason if reason is None else reason,
            history=[*self.history, new],
        )
        if moved.finished and self.finished_at is None:
            moved = replace(moved, finished_at=now or utcnow())
        return moved

    def rollback_path(self, failed: State) -> list[State]:
        """The states that take this promotion, which failed with `failed` (Deadline or Error),
        to Rollback: none once it is there, the failure first unless it was recorded."""
        if failed not in (State.DEADLINE, State.ERROR):
            raise ValueError(f"a promotion fails with Deadline or Error, not {failed}")
        if self.state in (State.PENDING, State.UPDATING, State.CANARY):
            return [failed, State.ROLLBACK]
        if self.state in (State.DEADLINE, State.ERROR):
            return [State.ROLLBACK]
        if self.state is State.ROLLBACK:
            return []
        raise InvalidTransition(
            f"cannot revert promotion {self.id} from {self.state}: it is not in progress"
        )

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
        return APP_STATUS[self.state]

    @property
    def outcome(self) -> str | None:
        """succeeded, reverted or failed once finished (the audit trail's word); else None."""
        return _OUTCOME[self.state] if self.finished else None


def revert_failed(reason: str, error: str) -> str:
    """The reason of a promotion whose revert failed too (it ends in Failure)."""
    return f"{reason}; the revert failed too: {error}"


# Where a failed promotion's one line sends the user: the command that says why.
DEBUG_HINT = "(run shipmate deploy-debug)"


def failure_message(promotion: Promotion) -> str:
    """The CLI's last line for a failed promotion (printed after `ERROR: `), ending with the
    one hint of where to look: `deploy-debug`."""
    if promotion.succeeded:
        raise ValueError(f"promotion {promotion.id} succeeded; it has no failure message")
    prefix = "rollback failed" if promotion.state is State.FAILURE else "rollback"
    if promotion.reason:
        return f"{prefix}: {promotion.reason} {DEBUG_HINT}"
    return f"{prefix} {DEBUG_HINT}"


def release_status(active: bool, promotions: Sequence[Promotion]) -> str:
    """A release's STATUS in `releases` (SPEC): `active`, `reverted` when its last promotion
    (`promotions` oldest first) was reverted, else blank."""
    if active:
        return "active"
    if promotions and promotions[-1].state is State.REVERTED:
        return "reverted"
    return ""


def fork_note(latest: str, active: str, promotions: Sequence[Promotion]) -> str | None:
    """Why changes fork from `latest` although `active` serves (`env`, `env set`): said
    because after a reverted promotion the environment shown is not the one running.

    Nothing is said of a release that was never promoted (`env set` without `--promote`,
    then `releases promote`, is the ordinary way of working) nor of one being promoted.
    """
    last = promotions[-1] if promotions else None
    if last is None or not last.finished:
        return None
    if last.state is State.REVERTED:
        why = "its promotion was reverted"
    elif last.state is State.FAILURE:
        why = "its promotion failed"
    else:
        why = "another release was promoted after it"
    return (
        f"the latest release {latest} is not active ({why}); changes fork from it, "
        f"the active release is {active}"
    )
