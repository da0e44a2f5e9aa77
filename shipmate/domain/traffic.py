"""What the router saw of a release, and whether a watched promotion's release is bad.

The router counts responses per backend (by status class, and in a latency histogram whose
buckets are `LATENCY_BOUNDS_MS`); the rack sums them per release over a window and `judge`s
the new release against the manifest's `deployment.watch` bounds. A p95 read from buckets is
the upper bound of the bucket that holds the 95th percentile: a bound of 2000 ms is exceeded
only when more than 5% of answers took longer than 2000 ms.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from shipmate.common.latency import LATENCY_BOUNDS_MS

CLASSES = 5  # 1xx .. 5xx


@dataclass(frozen=True)
class Counts:
    """Responses by status class (index 0 = 1xx) and by latency bucket."""

    classes: tuple[int, ...] = (0,) * CLASSES
    latency: tuple[int, ...] = (0,) * (len(LATENCY_BOUNDS_MS) + 1)

    def __add__(self, other: Counts) -> Counts:
        return Counts(_zip(self.classes, other.classes, 1), _zip(self.latency, other.latency, 1))

    def __sub__(self, other: Counts) -> Counts:
        # A backend's counters only grow; a negative difference means the router restarted
        # (or a port was reused) and the earlier reading no longer applies.
        diff = Counts(_zip(self.classes, other.classes, -1), _zip(self.latency, other.latency, -1))
        return self if min(diff.classes + diff.latency, default=0) < 0 else diff

    @property
    def requests(self) -> int:
        return sum(self.classes)

    @property
    def errors(self) -> int:
        return self.classes[4]

    def error_percent(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    def p95_ms(self) -> int | None:
        """The upper bound of the bucket holding the 95th percentile; None beyond the last
        bound (slower than every bound) or with no request."""
        total = sum(self.latency)
        if not total:
            return None
        seen = 0
        for index, count in enumerate(self.latency):
            seen += count
            if seen * 100 >= total * 95:
                return LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else None
        return None

    def slower_percent(self, bound_ms: int) -> float:
        """% of answers that took longer than `bound_ms` (rounded down to a bucket bound)."""
        total = sum(self.latency)
        if not total:
            return 0.0
        slow = sum(c for b, c in zip(LATENCY_BOUNDS_MS, self.latency, strict=False) if b > bound_ms)
        slow += self.latency[-1]
        return 100.0 * slow / total


def _zip(a: tuple[int, ...], b: tuple[int, ...], sign: int) -> tuple[int, ...]:
    return tuple(x + sign * y for x, y in zip(a, b, strict=True))


def total(counts: Iterable[Counts]) -> Counts:
    result = Counts()
    for c in counts:
        result = result + c
    return result


@dataclass(frozen=True)
class WatchRule:
    """`deployment.watch`: judge the new release for `duration` seconds; it is bad when more
    than `errors` % of its answers are 5xx, or its p95 latency exceeds `latency` ms. Fewer
    than `requests` answers are too few to judge."""

    duration: int = 120
    errors: float | None = 5.0
    latency: int | None = None
    requests: int = 20


class Outcome(enum.StrEnum):
    WATCHING = "watching"  # not over, nothing wrong (yet)
    PASSED = "passed"
    FAILED = "failed"
    EXCUSED = "excused"  # bad, but the previous release was as bad: rolling back would not help
    TOO_LITTLE = "too little traffic"
    STOPPED = "stopped"  # a new promotion began, or the canary was decided, before its end


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str  # `5xx 37% > 5%`, or what was seen when nothing was wrong

    @property
    def over(self) -> bool:
        return self.outcome is not Outcome.WATCHING


def breach(rule: WatchRule, counts: Counts) -> str | None:
    """Why `counts` exceed the rule (`5xx 37% > 5%`, `p95 3000 ms > 2000 ms`), or None."""
    if counts.requests < rule.requests:
        return None
    if rule.errors is not None and counts.error_percent() > rule.errors:
        return f"5xx {_percent(counts.error_percent())} > {_percent(rule.errors)}"
    if rule.latency is not None and counts.slower_percent(rule.latency) > 5.0:
        p95 = counts.p95_ms()
        seen = f"{p95} ms" if p95 is not None else f"over {LATENCY_BOUNDS_MS[-1]} ms"
        return f"p95 {seen} > {rule.latency} ms"
    return None


def describe(counts: Counts) -> str:
    """What was seen: `812 requests, 5xx 0%, p95 25 ms`."""
    p95 = counts.p95_ms()
    latency = f", p95 {p95} ms" if p95 is not None else ""
    return f"{counts.requests} requests, 5xx {_percent(counts.error_percent())}{latency}"


def judge(rule: WatchRule, new: Counts, previous: Counts | None, elapsed: float) -> Verdict:
    """The verdict on the new release after `elapsed` seconds of watching.

    A breach ends the watch at once; the previous release (its own window) excuses it when it
    breached the rule too, since going back to it would not help. Too few answers by the end
    of the duration are said, not guessed."""
    why = breach(rule, new)
    if why is not None:
        if previous is not None and breach(rule, previous) is not None:
            return Verdict(
                Outcome.EXCUSED,
                f"{why}, but the previous release did as badly ({describe(previous)})",
            )
        return Verdict(Outcome.FAILED, why)
    if elapsed < rule.duration:
        return Verdict(Outcome.WATCHING, describe(new))
    if new.requests < rule.requests:
        return Verdict(
            Outcome.TOO_LITTLE,
            f"{new.requests} requests in {rule.duration} s, fewer than the {rule.requests} "
            "needed to judge",
        )
    return Verdict(Outcome.PASSED, describe(new))


def _percent(value: float) -> str:
    return f"{value:.0f}%" if value >= 10 or value == int(value) else f"{value:.1f}%"
