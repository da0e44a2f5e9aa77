"""Canary groups through a real router, and through the daemon's admin API with RemoteRoutes
(with the counts the rack reads after a promotion)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from shipmate.common.latency import LATENCY_BOUNDS_MS
from shipmate.router import lifecycle
from shipmate.router.counters import BUCKETS, BackendCounts
from shipmate.router.home import Paths
from shipmate.router.remote import RouterError
from shipmate.router.table import RouteTable
from tests.router.test_daemon import call, get
from tests.router.test_router import HOST, Backend, RouterThread, free_port


@pytest.fixture
def three() -> Iterator[tuple[Backend, Backend, Backend]]:
    a, b, c = Backend("a"), Backend("b"), Backend("c")
    yield a, b, c
    for backend in (a, b, c):
        backend.stop()


@pytest.fixture(params=["asyncio", "uvloop"])
def router(request: pytest.FixtureRequest) -> Iterator[tuple[RouteTable, RouterThread]]:
    table = RouteTable()
    running = RouterThread(table, request.param)
    yield table, running
    running.close()


def test_ten_percent_is_every_tenth_request(
    router: tuple[RouteTable, RouterThread], three: tuple[Backend, Backend, Backend]
) -> None:
    table, running = router
    a, b, canary = three
    table.set_backends("myapp", "web", [a.addr, b.addr])
    table.set_canary("myapp", "web", [canary.addr], 10)
    with httpx.Client(base_url=running.router.url, headers={"Host": HOST}, timeout=10) as c:
        seen = Counter(c.get("/").headers["x-backend"] for _ in range(1000))
    assert abs(seen["c"] - 100) <= 1
    assert abs(seen["a"] - 450) <= 1 and abs(seen["b"] - 450) <= 1

    async def read() -> BackendCounts | None:
        return running.router.gateway.counters.get(canary.addr)

    counted = running.call(read())
    assert counted is not None and counted.classes[1] == seen["c"]


def test_a_canary_that_refuses_connections_loses_no_request(
    router: tuple[RouteTable, RouterThread], three: tuple[Backend, Backend, Backend]
) -> None:
    table, running = router
    a = three[0]
    dead = f"127.0.0.1:{free_port()}"
    table.set_backends("myapp", "web", [a.addr])
    table.set_canary("myapp", "web", [dead], 50)
    with httpx.Client(base_url=running.router.url, headers={"Host": HOST}, timeout=10) as c:
        for _ in range(20):
            assert c.get("/").headers["x-backend"] == "a"
            # A body the stream path buffers, and one it streams (no replay: not retried
            # after sending, but a refused connection has sent nothing).
            assert c.post("/", content=b"small").content == b"small"
            assert c.post("/", content=b"x" * 100_000).status_code == 200


def test_the_stream_path_takes_canary_backends(
    router: tuple[RouteTable, RouterThread], three: tuple[Backend, Backend, Backend]
) -> None:
    # The stream path checks after reading a body that each candidate is still routed: a
    # canary backend is, and must not be skipped as a removed one.
    table, running = router
    a, _, canary = three
    table.set_backends("myapp", "web", [a.addr])
    table.set_canary("myapp", "web", [canary.addr], 50)
    body = b"y" * 100_000
    with httpx.Client(base_url=running.router.url, headers={"Host": HOST}, timeout=10) as c:
        seen = Counter(c.post("/", content=body).headers["x-backend"] for _ in range(10))
    assert seen == {"a": 5, "c": 5}


def test_end_canary_through_the_router(
    router: tuple[RouteTable, RouterThread], three: tuple[Backend, Backend, Backend]
) -> None:
    table, running = router
    a, b, canary = three
    table.set_backends("myapp", "web", [a.addr, b.addr])
    table.set_canary("myapp", "web", [canary.addr], 25)
    with httpx.Client(base_url=running.router.url, headers={"Host": HOST}, timeout=10) as c:

        def seen() -> set[str]:
            return {c.get("/").headers["x-backend"] for _ in range(12)}

        assert seen() == {"a", "b", "c"}
        table.end_canary("myapp", "web", keep=False)
        assert seen() == {"a", "b"}
        table.set_canary("myapp", "web", [canary.addr], 25)
        table.end_canary("myapp", "web", keep=True)
        assert table.backends("myapp", "web") == [a.addr, b.addr, canary.addr]
        assert Counter(c.get("/").headers["x-backend"] for _ in range(12)) == {
            "a": 4,
            "b": 4,
            "c": 4,
        }


# --- through the daemon ------------------------------------------------------------------------


def test_canary_and_counters_over_the_admin_api(
    paths: Paths, three: tuple[Backend, Backend, Backend]
) -> None:
    a, b, canary = three
    # Two router processes: the counts are the sum of both.
    info = lifecycle.start(paths, "127.0.0.1:0", workers=2)
    call(paths, "set_backends", "myapp", "web", [a.addr, b.addr])
    call(paths, "set_canary", "myapp", "web", [canary.addr], 20)
    assert call(paths, "canaries") == {"myapp": {"web": ([canary.addr], 20)}}
    assert call(paths, "snapshot") == {"myapp": {"web": [a.addr, b.addr]}}
    saved = json.loads(paths.routes.read_text())
    assert saved["canaries"] == {"myapp": {"web": {"backends": [canary.addr], "percent": 20}}}

    # A new connection each: the kernel spreads them over both processes.
    seen = Counter(get(info.url).headers["x-backend"] for _ in range(60))
    assert set(seen) == {"a", "b", "c"}
    counters = call(paths, "counters")
    assert isinstance(counters, dict)
    assert set(counters) == {a.addr, b.addr, canary.addr}
    for backend, name in ((a, "a"), (b, "b"), (canary, "c")):
        classes, latency = counters[backend.addr]
        assert classes == (0, seen[name], 0, 0, 0)
        assert len(latency) == BUCKETS and sum(latency) == seen[name]
    typed = call(paths, "backend_counts")
    assert isinstance(typed, dict)
    assert typed[canary.addr] == BackendCounts((0, seen["c"], 0, 0, 0), counters[canary.addr][1])
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(paths.socket))) as admin:
        answer = admin.get("http://router/counters").json()
        assert answer["bounds_ms"] == list(LATENCY_BOUNDS_MS)
        assert answer["counters"][a.addr] == {
            "classes": [0, seen["a"], 0, 0, 0],
            "latency": list(counters[a.addr][1]),
        }
        route = admin.get("http://router/routes/myapp/web").json()
        assert route == {
            "backends": [a.addr, b.addr],
            "canary": {"backends": [canary.addr], "percent": 20},
        }
        # Refusals, as for the other endpoints: one line, nothing changed.
        bad = admin.put("http://router/routes/myapp/web/canary", json={"backends": [a.addr]})
        assert bad.status_code == 400 and bad.json() == {"error": "the body needs 'percent'"}
        bad = admin.put(
            "http://router/routes/myapp/web/canary", json={"backends": [a.addr], "percent": 5}
        )
        assert bad.status_code == 400 and "already an ordinary backend" in bad.json()["error"]
        bad = admin.put(
            "http://router/routes/myapp/web/canary", json={"backends": ["x"], "percent": 5}
        )
        assert bad.status_code == 400
        bad = admin.delete("http://router/routes/myapp/web/canary")
        assert bad.status_code == 400 and bad.json() == {"error": "say keep=true or keep=false"}
        gone = admin.delete("http://router/routes/myapp/nope/canary?keep=true")
        assert gone.status_code == 404
    with pytest.raises(RouterError, match="percent must be an integer between 1 and 99"):
        call(paths, "set_canary", "myapp", "web", [canary.addr], 100)
    with pytest.raises(RouterError, match="no route for service api of app myapp"):
        call(paths, "set_canary", "myapp", "api", [canary.addr], 10)
    assert call(paths, "canaries") == {"myapp": {"web": ([canary.addr], 20)}}

    # A restarted router serves the canary from routes.json.
    assert lifecycle.stop(paths) == info
    port = info.url.rsplit(":", 1)[1]
    again = lifecycle.start(paths, f"127.0.0.1:{port}", workers=2)
    assert {get(again.url).headers["x-backend"] for _ in range(30)} == {"a", "b", "c"}
    call(paths, "end_canary", "myapp", "web", True)
    assert call(paths, "snapshot") == {"myapp": {"web": [a.addr, b.addr, canary.addr]}}
    assert call(paths, "canaries") == {}
    call(paths, "set_canary", "myapp", "web", [], 10)
    call(paths, "end_canary", "myapp", "web", False)
    call(paths, "end_canary", "myapp", "web", False)  # idempotent, as RemoteRoutes retries
    assert {get(again.url).headers["x-backend"] for _ in range(30)} == {"a", "b", "c"}
