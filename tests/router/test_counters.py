"""Response counts per backend, through a real router: both paths, and the router's own 502s."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shipmate.common.latency import LATENCY_BOUNDS_MS
from shipmate.router.counters import (
    BUCKETS,
    BackendCounts,
    Counters,
    merge,
)
from shipmate.router.table import RouteTable
from tests.router.test_router import HOST, Backend, RouterThread, free_port


def counts(router: RouterThread, backend: str) -> BackendCounts | None:
    """Read on the router's own loop, as the admin API does."""

    async def read() -> BackendCounts | None:
        return router.router.gateway.counters.get(backend)

    return router.call(read())


def bucket(ms: float) -> int:
    """The index of the latency bucket a response of `ms` milliseconds lands in."""
    return next((i for i, bound in enumerate(LATENCY_BOUNDS_MS) if ms <= bound), BUCKETS - 1)


@pytest.fixture
def backend() -> Iterator[Backend]:
    a = Backend("a")
    yield a
    a.stop()


@pytest.fixture
def table(backend: Backend) -> RouteTable:
    table = RouteTable()
    table.set_backends("myapp", "web", [backend.addr])
    return table


def spy_stream_attempts(router: RouterThread) -> list[int]:
    """Counts the stream path's attempts at a process (the fast path makes none)."""
    streams = router.router.streams
    original = streams._attempt
    calls: list[int] = []

    async def attempt(*args: Any) -> bool:
        calls.append(1)
        return await original(*args)

    streams._attempt = attempt  # type: ignore[method-assign]
    return calls


def test_unit_buckets_and_classes() -> None:
    counters = Counters()
    for status, ms in [(200, 0), (101, 4.9), (301, 5.2), (404, 9999), (503, 10001), (204, 700)]:
        counters.record("b:1", status, 100.0, 100.0 + ms / 1000)
    found = counters.get("b:1")
    assert found is not None
    assert found.classes == (1, 2, 1, 1, 1)
    expected = [0] * BUCKETS
    for i in (0, 0, 1, 14, 15, 8):
        expected[i] += 1
    assert list(found.latency) == expected
    assert counters.get("b:2") is None
    assert merge([counters.as_json(), counters.as_json(), {}]) == {
        "b:1": {"classes": [2, 4, 2, 2, 2], "latency": [2 * n for n in expected]}
    }
    counters.record("b:3", 600, 0.0, 0.0)  # llhttp lets 600-999 through: the process's error
    assert counters.get("b:3") == BackendCounts((0, 0, 0, 0, 1), (1,) + (0,) * (BUCKETS - 1))


def test_unit_forgets_only_old_unrouted_backends() -> None:
    counters = Counters(keep_for=600)
    counters.record("old:1", 200, 0.0, 0.0)
    counters.record("routed:1", 200, 0.0, 0.0)
    counters.record("recent:1", 200, 500.0, 500.0)
    counters.prune(700.0, lambda: {"routed:1"})
    assert set(counters.as_json()) == {"routed:1", "recent:1"}
    counters.record("old:2", 200, 0.0, 0.0)
    counters.prune(701.0, lambda: ())  # looked only once a minute
    assert "old:2" in counters.as_json()
    counters.prune(761.0, lambda: ())
    assert set(counters.as_json()) == {"recent:1"}


def test_fast_path_counts_by_class_and_latency(
    router: RouterThread, client: httpx.Client, backend: Backend
) -> None:
    attempts = spy_stream_attempts(router)
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert client.get("/slow?d=0.06").status_code == 200
    assert client.head("/").status_code == 200
    # A chunked answer is handed to the stream path after its head: counted once, here.
    assert client.get("/chunked").text == "hello chunked world"
    assert attempts == []
    found = counts(router, backend.addr)
    assert found is not None
    assert found.classes == (0, 6, 0, 0, 0)
    assert sum(found.latency) == 6
    # Latencies are sure only from below (a loaded machine slows anything): the 60 ms one is
    # in the (50, 100] bucket or above, and of five quick ones at least one is under 50 ms.
    assert sum(found.latency[bucket(60) :]) >= 1
    assert sum(found.latency[: bucket(50)]) >= 1


def test_stream_path_counts(router: RouterThread, client: httpx.Client, backend: Backend) -> None:
    attempts = spy_stream_attempts(router)
    big = b"x" * 200_000  # beyond what the fast path buffers: streamed
    assert client.post("/", content=big).content == big
    # HTTP/1.0 goes the stream path too.
    with socket.create_connection(("127.0.0.1", router.router.port), timeout=5) as s:
        s.sendall(b"GET /slow?d=0.03 HTTP/1.0\r\nHost: " + HOST.encode() + b"\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert len(attempts) == 2
    found = counts(router, backend.addr)
    assert found is not None
    assert found.classes == (0, 2, 0, 0, 0)
    assert sum(found.latency) == 2
    assert sum(found.latency[bucket(25) :]) >= 1  # the 30 ms one


class ResettingBackend:
    """Reads a request head, then resets the connection (SO_LINGER 0) without answering."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            data = b""
            while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                data += chunk
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def stop(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_reset_is_a_5xx_of_that_backend(loop: str) -> None:
    resetting = ResettingBackend()
    dead = f"127.0.0.1:{free_port()}"
    table = RouteTable()
    table.set_backends("myapp", "web", [resetting.addr])
    running = RouterThread(table, loop)
    try:
        with httpx.Client(base_url=running.router.url, headers={"Host": HOST}, timeout=10) as c:
            # POST: not replayed, the fast path answers 502 itself.
            assert c.post("/", content=b"once").status_code == 502
            # GET: replayed by the stream path, which answers 502 when that fails too.
            assert c.get("/").status_code == 502
            found = counts(running, resetting.addr)
            assert found is not None
            assert found.classes == (0, 0, 0, 0, 2)
            assert sum(found.latency) == 2
            # A process that refuses connections: its 502 is counted on it as well.
            table.set_backends("myapp", "web", [dead])
            assert c.get("/").status_code == 502
            refused = counts(running, dead)
            assert refused is not None and refused.classes == (0, 0, 0, 0, 1)
            # No route, no process chosen: nothing is counted.
            table.set_backends("myapp", "web", [])
            assert c.get("/").status_code == 503
            assert set(running.router.gateway.counters.as_json()) == {resetting.addr, dead}
    finally:
        running.close()
        resetting.stop()


def test_a_timeout_is_a_5xx(backend: Backend) -> None:
    table = RouteTable()
    table.set_backends("myapp", "web", [backend.addr])
    running = RouterThread(table, read_timeout=0.5)
    try:
        with httpx.Client(base_url=running.router.url, headers={"Host": HOST}, timeout=10) as c:
            assert c.get("/slow?d=2").status_code == 502
        found = counts(running, backend.addr)
        assert found is not None
        assert found.classes == (0, 0, 0, 0, 1)
        # At least the half second of the timeout (the sweep checks once a second).
        assert sum(found.latency[bucket(500) :]) == 1
    finally:
        running.close()
