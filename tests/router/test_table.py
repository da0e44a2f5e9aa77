"""RouteTable on its own: the switch, round robin, and draining across threads."""

from __future__ import annotations

import asyncio
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
