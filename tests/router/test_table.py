"""RouteTable on its own: the switch, round robin, and draining across threads."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from shipmate.router.table import RouteTable

A, B, C = "127.0.0.1:5001", "127.0.0.1:5002", "127.0.0.1:5003"


def test_set_add_remove_and_snapshot() -> None:
    table = RouteTable()
    table.set_backends("myapp", "web", [A, B, A])
    assert table.backends("myapp", "web") == [A, B]
    table.add_backend("myapp", "web", C)
    table.add_backend("myapp", "web", C)
    table.add_backend("other", "api", A)
    assert table.backends("myapp", "web") == [A, B, C]
    table.remove_backend("myapp", "web", B)
    table.remove_backend("nope", "web", B)
    assert table.snapshot() == {"myapp": {"web": [A, C]}, "other": {"api": [A]}}
    table.remove_app("myapp")
    assert table.snapshot() == {"other": {"api": [A]}}
    assert table.backends("myapp", "web") == []


def test_known_without_backends_differs_from_unknown() -> None:
    table = RouteTable()
    table.set_backends("myapp", "web", [A])
    table.remove_backend("myapp", "web", A)
    assert table.candidates("myapp", "web") == ()
    assert table.candidates("myapp", "worker") is None
    assert table.pick("myapp", "web") is None


def test_pick_round_robin() -> None:
    table = RouteTable()
    table.set_backends("myapp", "web", [A, B, C])
    assert [table.pick("myapp", "web") for _ in range(6)] == [A, B, C, A, B, C]
    assert table.candidates("myapp", "web") == (A, B, C)
    assert table.candidates("myapp", "web") == (B, C, A)
    table.set_backends("myapp", "web", [A])
    assert [table.pick("myapp", "web") for _ in range(2)] == [A, A]


@pytest.mark.parametrize("bad", ["localhost", "127.0.0.1:", ":80", "127.0.0.1:http", "h:70000"])
def test_rejects_malformed_backends(bad: str) -> None:
    with pytest.raises(ValueError):
        RouteTable().set_backends("myapp", "web", [bad])


def test_track_sync_and_async() -> None:
    table = RouteTable()
    with table.track(A):
        assert table.inflight(A) == 1
        with table.track(A):
            assert table.inflight(A) == 2
    assert table.inflight(A) == 0

    async def use() -> None:
        async with table.track(B):
            assert table.inflight(B) == 1

    asyncio.run(use())
    assert table.inflight(B) == 0


def test_wait_drained_across_threads() -> None:
    table = RouteTable()
    entered = threading.Event()

    def request() -> None:
        with table.track(A):
            entered.set()
            time.sleep(0.3)

    worker = threading.Thread(target=request)
    worker.start()
    entered.wait(5)

    async def drain() -> tuple[bool, bool, float]:
        short = await table.wait_drained(A, timeout=0.05)
        started = time.monotonic()
        done = await table.wait_drained(A, timeout=5)
        return short, done, time.monotonic() - started

    short, done, waited = asyncio.run(drain())
    worker.join()
    assert (short, done) == (False, True)
    assert 0.1 < waited < 2
    assert asyncio.run(table.wait_drained(A, timeout=0)) is True


# --- canary groups ---------------------------------------------------------------------------

D, E = "127.0.0.1:5004", "127.0.0.1:5005"


def test_canary_takes_exactly_its_percentage() -> None:
    table = RouteTable()
    table.set_backends("myapp", "web", [A, B])
    table.set_canary("myapp", "web", [C, D], 10)
    assert table.canary("myapp", "web") == ((C, D), 10)
    firsts = [table.pick("myapp", "web") for _ in range(1000)]
    # Every tenth request, not about one in ten; round robin inside each group.
    assert firsts[9::10] == [C, D] * 50
    rest = [b for i, b in enumerate(firsts) if i % 10 != 9]
    assert rest == [A, B] * 450


def test_canary_fallbacks_are_the_rest_then_the_other_group() -> None:
    table = RouteTable()
    table.set_backends("myapp", "web", [A, B])
    table.set_canary("myapp", "web", [C, D], 50)
    assert table.candidates("myapp", "web") == (A, B, C, D)
    assert table.candidates("myapp", "web") == (C, D, A, B)
    assert table.candidates("myapp", "web") == (B, A, C, D)
    assert table.candidates("myapp", "web") == (D, C, A, B)
    # Only canaries left: they take everything; an empty canary group takes nothing.
    table.remove_backend("myapp", "web", A)
    table.remove_backend("myapp", "web", B)
    assert {table.pick("myapp", "web") for _ in range(6)} == {C, D}
    table.set_backends("myapp", "web", [A])
    table.remove_backend("myapp", "web", C)
    table.remove_backend("myapp", "web", D)
    assert table.canary("myapp", "web") == ((), 50)
    assert [table.candidates("myapp", "web") for _ in range(3)] == [(A,)] * 3


def test_end_canary_keep_and_drop() -> None:
    table = RouteTable()
    table.set_backends("myapp", "web", [A])
    table.set_canary("myapp", "web", [B, C], 20)
    assert table.has_backend("myapp", "web", B)
    assert table.routed() == {A, B, C}
    table.end_canary("myapp", "web", keep=True)
    assert table.backends("myapp", "web") == [A, B, C]
    assert table.canary("myapp", "web") is None
    table.end_canary("myapp", "web", keep=True)  # idempotent: nothing to end
    assert table.backends("myapp", "web") == [A, B, C]

    table.set_canary("myapp", "web", [D], 20)
    table.end_canary("myapp", "web", keep=False)
    assert table.backends("myapp", "web") == [A, B, C]
    assert not table.has_backend("myapp", "web", D)
    assert {table.pick("myapp", "web") for _ in range(30)} == {A, B, C}


def test_end_canary_keeps_draining_working() -> None:
    table = RouteTable()
    table.set_backends("myapp", "web", [A])
    table.set_canary("myapp", "web", [B], 50)

    async def run() -> tuple[bool, bool]:
        table.begin(B)  # a request in flight on the canary
        table.end_canary("myapp", "web", keep=False)
        early = await table.wait_drained(B, timeout=0.05)
        asyncio.get_running_loop().call_later(0.05, table.end, B)
        return early, await table.wait_drained(B, timeout=5)

    assert asyncio.run(run()) == (False, True)


def test_canary_writes_and_refusals() -> None:
    table = RouteTable()
    with pytest.raises(KeyError):
        table.set_canary("myapp", "web", [B], 10)
    table.set_backends("myapp", "web", [A])
    for percent in (0, 100, True, 10.5):
        with pytest.raises(ValueError, match="percent"):
            table.set_canary("myapp", "web", [B], percent)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already an ordinary backend"):
        table.set_canary("myapp", "web", [A], 10)
    with pytest.raises(ValueError, match="HOST:PORT"):
        table.set_canary("myapp", "web", ["nope"], 10)
    table.set_canary("myapp", "web", [B, C, B], 10)
    assert table.canary("myapp", "web") == ((B, C), 10)
    # A backend is in one group at most: made ordinary, it leaves the canary group.
    table.add_backend("myapp", "web", B)
    assert table.canary("myapp", "web") == ((C,), 10)
    table.set_backends("myapp", "web", [A, C])
    assert table.canary("myapp", "web") == ((), 10)
    table.set_canary("myapp", "web", [D], 30)
    table.remove_backend("myapp", "web", D)  # the runtime stops a canary process this way
    assert table.canary("myapp", "web") == ((), 30)
    assert not table.has_backend("myapp", "web", D)
    table.remove_app("myapp")
    assert table.canary("myapp", "web") is None
    assert table.routed() == set()


def test_snapshot_and_load_carry_canaries() -> None:
    table = RouteTable()
    table.set_backends("myapp", "web", [A, B])
    table.set_backends("myapp", "worker", [])
    table.set_canary("myapp", "web", [C], 25)
    routes, canaries = table.snapshot(), table.canaries()
    assert routes == {"myapp": {"web": [A, B], "worker": []}}
    assert canaries == {"myapp": {"web": {"backends": [C], "percent": 25}}}

    other = RouteTable()
    other.load(json.loads(json.dumps(routes)), json.loads(json.dumps(canaries)))
    assert other.snapshot() == routes and other.canaries() == canaries
    assert [other.pick("myapp", "web") for _ in range(4)] == [A, B, A, C]
    # A table handed over without canaries (an older daemon's) has none.
    other.load(routes)
    assert other.canary("myapp", "web") is None
    # Canaries of a route that is not in the routes are dropped with it.
    other.load({}, canaries)
    assert other.canaries() == {}
