"""The rolling update of one service (SPEC section 4), as a plan: observed processes in,
the next safe steps out.

No I/O and no clock: a runtime observes its processes, asks `plan` what to do, executes the
steps (start processes, route them, take them out and stop them), waits when told to, and
asks again once the health of a new process has changed. The local runtime does so with
processes under shims; a Swarm runtime can do the same with tasks. The rollout's deadline is
the runtime's: the plan only says when there is nothing to do but wait.

The bounds are Convox's `deployment` percentages of `count`: `minimum` of them must stay
healthy (old processes count as healthy: they are what serves until they are replaced), and
`maximum` of them may run at once, old and new together.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass


class Health(enum.StrEnum):
    STARTING = "starting"  # not yet passed a health check
    HEALTHY = "healthy"  # passed one
    FAILED = "failed"  # exited (or was found broken) before it passed one


@dataclass(frozen=True)
class Bounds:
    """What a service should run and how far a rollout may stray from it."""

    count: int
    minimum: int = 50  # % of count that stays healthy
    maximum: int = 200  # % of count that may run

    def __post_init__(self) -> None:
        # Out of these ranges a rollout could never take a step (the manifest refuses them).
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        if not 0 <= self.minimum <= 100:
            raise ValueError(f"minimum must be from 0 to 100 (%), got {self.minimum}")
        if self.maximum < 0:
            raise ValueError(f"maximum must be >= 0 (%), got {self.maximum}")

    @property
    def min_healthy(self) -> int:
        """Processes that must stay healthy: `minimum`% of count, rounded up."""
        return math.ceil(self.count * self.minimum / 100)

    @property
    def surge(self) -> int:
        """Processes that may run beyond count: `maximum`% of count rounded down, less count.

        When neither bound would allow a step (maximum 100 and minimum 100), one extra.
        """
        surge = max(0, math.floor(self.count * self.maximum / 100) - self.count)
        if surge == 0 and self.min_healthy >= self.count:
            return 1
        return surge


@dataclass(frozen=True)
class Observed:
    """One process of the service, as the runtime sees it now.

    `current`: it runs the desired release (and, for a restart, was started after it).
    `routed`: it is in service: in the router, or for a service without a port (nothing to
    route), reported healthy.
    """

    id: str
    current: bool
    health: Health = Health.HEALTHY
    routed: bool = True


@dataclass(frozen=True)
class Start:
    """Start `count` new processes; the release then has `total` (for the event)."""

    count: int
    total: int


@dataclass(frozen=True)
class Route:
    """Put these healthy new processes in service, in order, and report them healthy."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class Stop:
    """Take these processes out of the router, let requests in flight finish, stop them."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class Wait:
    """Nothing more is safe until the health of a starting new process changes."""


@dataclass(frozen=True)
class Done:
    """The service runs `count` healthy current processes and nothing else."""


@dataclass(frozen=True)
class Fail:
    """A new process failed before it became healthy: the rollout has failed."""

    process_id: str


Step = Start | Route | Stop | Wait | Done | Fail


def plan(bounds: Bounds, processes: Sequence[Observed]) -> tuple[Step, ...]:
    """The next steps of the rollout, in order; the last is always Wait, Done or Fail.

    `processes` are the service's running processes in the order they were started (stopping
    ones left out): the newest are the ones scaled away.
    """
    failed = [p for p in processes if p.current and p.health is Health.FAILED]
    if failed:
        return (Fail(failed[0].id),)
    count = bounds.count
    new = [p for p in processes if p.current]
    old = [p.id for p in processes if not p.current]
    steps: list[Step] = []
    if len(new) > count:
        # Scaling down within the release: the newest go first.
        steps.append(Stop(tuple(p.id for p in reversed(new[count:]))))
        new = new[:count]
    unrouted = tuple(p.id for p in new if p.health is Health.HEALTHY and not p.routed)
    if unrouted:
        steps.append(Route(unrouted))
    running = len(new)
    healthy = sum(p.health is Health.HEALTHY for p in new)
    starting = running - healthy
    while True:
        more = min(count - running, count + bounds.surge - running - len(old))
        if more > 0:
            running += more
            starting += more
            steps.append(Start(more, running))
        # Old processes stop as soon as enough others are healthy; with count 0, at once.
        removable = healthy + len(old) - bounds.min_healthy
        stopping: list[str] = []
        while old and (removable > 0 or count == 0):
            stopping.append(old.pop(0))
            removable -= 1
        if stopping:
            steps.append(Stop(tuple(stopping)))
        if starting:
            steps.append(Wait())
            return tuple(steps)
        if not old and running == count:
            steps.append(Done())
            return tuple(steps)
        if more <= 0 and not stopping:  # unreachable with valid bounds; a hang is worse
            raise AssertionError(f"rollout plan stuck: {bounds}, {len(old)} old, {running} new")
        # Every new process is healthy and old ones were stopped: capacity is free again.
