"""The rolling-update planner (SPEC section 4), driven through whole rollouts on data."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest

from shipmate.domain.rollout import (
    Bounds,
    Done,
    Fail,
    Health,
    Observed,
    Route,
    Start,
    Step,
    Stop,
    Wait,
    plan,
)

H, S, F = Health.HEALTHY, Health.STARTING, Health.FAILED


def old(*ids: str) -> list[Observed]:
    return [Observed(i, current=False) for i in ids]


def new(*ids: str, health: Health = H, routed: bool | None = None) -> list[Observed]:
    in_service = health is H if routed is None else routed
    return [Observed(i, current=True, health=health, routed=in_service) for i in ids]


@dataclass
class Driver:
    """Applies a plan's steps to processes as data, as a runtime would to real ones.

    On Wait, the oldest starting process finishes its first health check: it fails if it is
    the n-th process started and n is in `failing`, else it becomes healthy.
    """

    bounds: Bounds
    processes: list[Observed]
    failing: frozenset[int] = frozenset()
    started: int = 0
    plans: list[tuple[Step, ...]] = field(default_factory=list)
    result: Done | Fail | None = None

    def serving(self) -> int:
        return sum(not p.current or (p.health is H and p.routed) for p in self.processes)

    def run(self, check: Callable[[Driver, Step], None], limit: int = 500) -> Done | Fail:
        for _ in range(limit):
            steps = plan(self.bounds, self.processes)
            self.plans.append(steps)
            assert steps and isinstance(steps[-1], Wait | Done | Fail)
            assert not any(isinstance(s, Wait | Done | Fail) for s in steps[:-1])
            for step in steps:
                self.apply(step)
                check(self, step)
            if self.result is not None:
                return self.result
        raise AssertionError(f"no end after {limit} plans")

    def apply(self, step: Step) -> None:
        match step:
            case Start(count=n, total=total):
                assert n > 0
                for _ in range(n):
                    self.started += 1
                    self.processes.append(Observed(f"n{self.started}", True, S, False))
                assert total == sum(p.current for p in self.processes)
            case Route(ids=ids):
                for i, p in enumerate(self.processes):
                    if p.id in ids:
                        assert p.current and p.health is H and not p.routed
                        self.processes[i] = replace(p, routed=True)
            case Stop(ids=ids):
                assert ids and set(ids) <= {p.id for p in self.processes}
                self.processes = [p for p in self.processes if p.id not in ids]
            case Wait():
                waiting = [p for p in self.processes if p.current and p.health is S]
                assert waiting, "told to wait with nothing starting"
                p = waiting[0]
                number = int(p.id[1:]) if p.id.startswith("n") else 0
                health = F if number in self.failing else H
                self.processes[self.processes.index(p)] = replace(p, health=health)
            case Done() | Fail():
                self.result = step


def invariants(start: list[Observed], bounds: Bounds) -> Callable[[Driver, Step], None]:
    """SPEC section 4's bounds, as far as the state the rollout starts from allows."""
    ceiling = max(len(start), bounds.count + bounds.surge)
    floor = min(bounds.min_healthy, sum(not p.current or p.health is H for p in start))

    def check(driver: Driver, step: Step) -> None:
        running = len(driver.processes)
        assert running <= ceiling, "more processes than at the start or than maximum allows"
        if isinstance(step, Start):
            assert running <= bounds.count + bounds.surge, "started beyond maximum"
        assert driver.serving() >= floor, "fewer healthy processes than minimum requires"

    return check


def finished_cleanly(driver: Driver, bounds: Bounds) -> None:
    assert driver.result == Done()
    assert all(p.current and p.health is H and p.routed for p in driver.processes)
    assert len(driver.processes) == bounds.count


SCENARIOS: dict[str, Callable[[int], list[Observed]]] = {
    "first deploy": lambda n: [],
    "replace all": lambda n: old(*(f"o{i}" for i in range(n))),
    "replace and scale up": lambda n: old(*(f"o{i}" for i in range(max(1, n // 2)))),
    "replace and scale down": lambda n: old(*(f"o{i}" for i in range(2 * n))),
    "scale up": lambda n: new(*(f"c{i}" for i in range(n // 2))),
    "scale down": lambda n: new(*(f"c{i}" for i in range(2 * n))),
    "resume": lambda n: (
        new(*(f"c{i}" for i in range(n // 2)))
        + new("c-starting", health=S)
        + old(*(f"o{i}" for i in range(n - n // 2)))
    ),
    "healthy, not yet routed": lambda n: new(*(f"c{i}" for i in range(n)), routed=False),
}

GRID = list(itertools.product([1, 2, 4, 10], [0, 50, 100], [100, 150, 200]))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize(("count", "minimum", "maximum"), GRID)
def test_rollout_stays_within_bounds_and_converges(
    scenario: str, count: int, minimum: int, maximum: int
) -> None:
    bounds = Bounds(count, minimum, maximum)
    start = SCENARIOS[scenario](count)
    driver = Driver(bounds, list(start))
    driver.run(invariants(start, bounds))
    finished_cleanly(driver, bounds)


@pytest.mark.parametrize("fails", [1, 2, 3])
@pytest.mark.parametrize(("count", "minimum", "maximum"), GRID)
def test_a_new_process_failing_mid_way_fails_the_rollout(
    fails: int, count: int, minimum: int, maximum: int
) -> None:
    bounds = Bounds(count, minimum, maximum)
    start = old(*(f"o{i}" for i in range(count)))
    driver = Driver(bounds, list(start), failing=frozenset({fails}))
    result = driver.run(invariants(start, bounds))
    if fails > count:  # never started: the rollout completes
        finished_cleanly(driver, bounds)
        return
    assert result == Fail(f"n{fails}")
    assert driver.plans[-1] == (Fail(f"n{fails}"),)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_count_zero_stops_everything_at_once(scenario: str) -> None:
    bounds = Bounds(0, 50, 200)
    steps = plan(bounds, SCENARIOS[scenario](3))
    assert not any(isinstance(s, Start | Route) for s in steps)
    stopped = [i for s in steps if isinstance(s, Stop) for i in s.ids]
    assert sorted(stopped) == sorted(p.id for p in SCENARIOS[scenario](3))
    assert steps[-1] == Done()


def test_nothing_to_do() -> None:
    assert plan(Bounds(2), new("a", "b")) == (Done(),)
    assert plan(Bounds(0), []) == (Done(),)


@pytest.mark.parametrize(
    ("count", "minimum", "maximum", "surge", "min_healthy"),
    [
        (1, 50, 200, 1, 1),
        (4, 50, 150, 2, 2),
        (10, 50, 150, 5, 5),
        (3, 50, 150, 1, 2),  # floor(4.5) - 3, ceil(1.5)
        (2, 100, 100, 1, 2),  # neither bound allows a step: one extra
        (2, 0, 100, 0, 0),  # stop first, then start
        (1, 0, 100, 0, 0),
        (0, 50, 200, 1, 0),
        (10, 100, 200, 10, 10),
    ],
)
def test_bounds_arithmetic(
    count: int, minimum: int, maximum: int, surge: int, min_healthy: int
) -> None:
    bounds = Bounds(count, minimum, maximum)
    assert (bounds.surge, bounds.min_healthy) == (surge, min_healthy)


@pytest.mark.parametrize("bad", [dict(count=-1), dict(minimum=101), dict(minimum=-1)])
def test_bounds_refuse_what_no_rollout_could_satisfy(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Bounds(**{"count": 1, **bad})


def test_default_bounds_replace_one_process_start_before_stop() -> None:
    bounds = Bounds(1, 50, 200)
    assert plan(bounds, old("o")) == (Start(1, 1), Wait())
    assert plan(bounds, old("o") + new("n1", health=S)) == (Wait(),)
    assert plan(bounds, old("o") + new("n1", routed=False)) == (
        Route(("n1",)),
        Stop(("o",)),
        Done(),
    )


def test_four_processes_at_150_percent() -> None:
    bounds = Bounds(4, 50, 150)  # surge 2, min_healthy 2
    olds = old("o1", "o2", "o3", "o4")
    assert plan(bounds, olds) == (Start(2, 2), Stop(("o1", "o2")), Wait())
    state = olds[2:] + new("n1", routed=False) + new("n2", health=S)
    assert plan(bounds, state) == (Route(("n1",)), Start(2, 4), Stop(("o3",)), Wait())
    state = olds[3:] + new("n1") + new("n2", routed=False) + new("n3", "n4", health=S)
    assert plan(bounds, state) == (Route(("n2",)), Stop(("o4",)), Wait())
    state = new("n1", "n2", "n3") + new("n4", routed=False)
    assert plan(bounds, state) == (Route(("n4",)), Done())


def test_minimum_100_maximum_100_replaces_one_at_a_time() -> None:
    bounds = Bounds(2, 100, 100)
    assert plan(bounds, old("o1", "o2")) == (Start(1, 1), Wait())
    state = old("o1", "o2") + new("n1", routed=False)
    assert plan(bounds, state) == (Route(("n1",)), Stop(("o1",)), Start(1, 2), Wait())


def test_minimum_0_maximum_100_stops_the_old_then_starts_the_new() -> None:
    # No room to start before stopping; once stopped, the new ones start in the same plan.
    assert plan(Bounds(2, 0, 100), old("o1", "o2")) == (Stop(("o1", "o2")), Start(2, 2), Wait())


def test_scaling_down_within_a_release_stops_the_newest_first() -> None:
    state = new("a", "b") + new("c", health=S) + new("d")
    assert plan(Bounds(2), state) == (Stop(("d", "c")), Done())


def test_scaling_up_within_a_release_starts_only_the_difference() -> None:
    assert plan(Bounds(5, 50, 200), new("a", "b")) == (Start(3, 5), Wait())


def test_a_failed_new_process_fails_the_rollout_before_anything_else() -> None:
    state = old("o") + new("n1", routed=False) + new("n2", health=F)
    assert plan(Bounds(2), state) == (Fail("n2"),)


def test_a_failed_old_process_is_still_replaced_not_a_failure() -> None:
    state = [Observed("o", current=False, health=F)]
    assert plan(Bounds(1), state) == (Start(1, 1), Wait())
