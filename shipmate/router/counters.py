"""Per-backend response counts: how many responses of each status class a process gave, and
how long their heads took, in a fixed histogram. Cumulative since the router started; the
rack reads them (GET /counters on the admin API) and takes differences.

This module is what the rack may import without the router's daemon code: `BackendCounts`
and `LATENCY_BOUNDS_MS` are plain data. `Counters` is the router's own side.

No lock: a router process counts only from its own event loop (fast.py and stream.py run
there, and so does the admin API that reads the counts, or, in a worker process, the control
channel that answers the daemon), so every write and every read happens on one thread. The
RouteTable needs its lock because the runtime writes it from other threads; counters are not
written by anyone else.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shipmate.common.latency import LATENCY_BOUNDS_MS

# The bucket bounds are shared with the rack, which reads a p95 from the buckets.
BUCKETS = len(LATENCY_BOUNDS_MS) + 1
CLASSES = 5  # 1xx .. 5xx
# The same bounds in seconds: the paths measure with time.monotonic().
_BOUNDS_S = tuple(b / 1000 for b in LATENCY_BOUNDS_MS)
# status // 100 -> the index of its class; llhttp refuses statuses past 999, and the few
# below 100 or from 600 up it lets through count as the process's errors (5xx).
_CLASS = (4, 0, 1, 2, 3, 4, 4, 4, 4, 4)
# A backend that is in no route any more is forgotten this long after its last response (the
# rack reads the counts of old processes after a promotion, well within this).
KEEP_FOR = 600.0
# How often forgotten backends are looked for (the sweep runs once a second).
PRUNE_EVERY = 60.0


@dataclass(frozen=True)
class BackendCounts:
    """One backend's counts: responses per class (1xx..5xx) and per latency bucket (the
    buckets of LATENCY_BOUNDS_MS, then the overflow). Both add up to the same total."""

    classes: tuple[int, int, int, int, int]
    latency: tuple[int, ...]

    @classmethod
    def from_json(cls, value: Any) -> BackendCounts:
        classes, latency = value["classes"], value["latency"]
        if len(classes) != CLASSES or len(latency) != BUCKETS:
            raise ValueError(f"counts of the wrong shape: {value!r}")
        a, b, c, d, e = (int(n) for n in classes)
        return cls((a, b, c, d, e), tuple(int(n) for n in latency))

    def as_tuples(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.classes, self.latency


class Count:
    """The mutable counts of one backend, as the router keeps them."""

    __slots__ = ("classes", "last", "latency")

    def __init__(self) -> None:
        self.classes = [0] * CLASSES
        self.latency = [0] * BUCKETS
        self.last = 0.0


class Counters:
    """Every backend's counts in one router process, created on a backend's first response."""

    def __init__(self, keep_for: float = KEEP_FOR) -> None:
        self.keep_for = keep_for
        self._counts: dict[str, Count] = {}
        self._next_prune = 0.0

    def record(self, backend: str, status: int, sent: float, now: float) -> None:
        """One response from `backend` (or a 502 the router gave for it): its status, when the
        request started going out and when the head came back (or the router gave up)."""
        # The hot path of every response: a few increments (docs/BENCHMARKS.md, issue 13).
        try:
            count = self._counts[backend]
        except KeyError:
            count = self._counts[backend] = Count()
        count.classes[_CLASS[status // 100]] += 1
        count.latency[bisect_left(_BOUNDS_S, now - sent)] += 1
        count.last = now

    def get(self, backend: str) -> BackendCounts | None:
        count = self._counts.get(backend)
        return None if count is None else _frozen(count.classes, count.latency)

    def as_json(self) -> dict[str, dict[str, list[int]]]:
        """{backend: {"classes": [...], "latency": [...]}}, the admin API's shape."""
        return {
            backend: {"classes": list(c.classes), "latency": list(c.latency)}
            for backend, c in self._counts.items()
        }

    def prune(self, now: float, routed: Callable[[], Iterable[str]]) -> None:
        """Forget backends in no route whose last response is older than `keep_for`; looks
        only every PRUNE_EVERY seconds, so the sweep can call it every time."""
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY
        old = [b for b, c in self._counts.items() if now - c.last > self.keep_for]
        if old:
            keep = set(routed())
            for backend in old:
                if backend not in keep:
                    del self._counts[backend]


def merge(parts: Iterable[Mapping[str, Mapping[str, list[int]]]]) -> dict[str, dict[str, Any]]:
    """Add up the `as_json` of several router processes (the daemon and its workers)."""
    total: dict[str, dict[str, list[int]]] = {}
    for part in parts:
        for backend, counts in part.items():
            mine = total.get(backend)
            if mine is None:
                total[backend] = {k: list(counts[k]) for k in ("classes", "latency")}
                continue
            for key in ("classes", "latency"):
                mine[key] = [a + b for a, b in zip(mine[key], counts[key], strict=True)]
    return dict(total)


def _frozen(classes: list[int], latency: list[int]) -> BackendCounts:
    a, b, c, d, e = classes
    return BackendCounts((a, b, c, d, e), tuple(latency))
