"""The router daemon for real: its own process, the admin socket, routes.json, and a rack that
comes and goes (even by SIGKILL) while requests keep flowing through the router."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from shipmate.router import lifecycle
from shipmate.router.home import Paths
from shipmate.router.remote import RemoteRoutes, RouterError
from tests.integration.conftest import start_rack, stop_rack
from tests.router.test_router import Backend, free_port

HOST = "web.myapp.localhost"


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    a, b = Backend("a"), Backend("b")
    yield a, b
    a.stop()
    b.stop()


def call(paths: Paths, method: str, *args: object) -> object:
    """One RemoteRoutes call, as the runtime makes it (from an event loop of its own)."""

    async def go() -> object:
        routes = RemoteRoutes(paths.socket, retry_for=2)
        try:
            return await getattr(routes, method)(*args)
        finally:
            await routes.aclose()

    return asyncio.run(go())


def get(url: str, path: str = "/") -> httpx.Response:
    return httpx.get(url + path, headers={"Host": HOST}, timeout=10)


def test_admin_round_trip(paths: Paths, backends: tuple[Backend, Backend]) -> None:
    a, b = backends
    info = lifecycle.start(paths, "127.0.0.1:0")
    assert lifecycle.running(paths) == info
    assert json.loads(paths.info.read_text())["pid"] == info.pid
    # Only the owner may change routing.
    assert stat.S_IMODE(paths.socket.stat().st_mode) == 0o600

    assert get(info.url).status_code == 404
    call(paths, "declare", "myapp", "web")
    assert call(paths, "backends", "myapp", "web") == []
    assert get(info.url).status_code == 503
    call(paths, "add_backend", "myapp", "web", a.addr)
    call(paths, "add_backend", "myapp", "web", a.addr)  # idempotent
    resp = get(info.url, "/x")
    assert resp.status_code == 200 and resp.headers["x-backend"] == "a"
    call(paths, "set_backends", "myapp", "web", [b.addr])
    assert get(info.url).headers["x-backend"] == "b"
    call(paths, "add_backend", "myapp", "web", a.addr)
    assert call(paths, "snapshot") == {"myapp": {"web": [b.addr, a.addr]}}
    call(paths, "remove_backend", "myapp", "web", b.addr)
    assert {get(info.url).headers["x-backend"] for _ in range(4)} == {"a"}
    call(paths, "remove_app", "myapp")
    assert get(info.url).status_code == 404
    assert call(paths, "snapshot") == {}

    # Refusals are one line naming the problem, and change nothing.
    with pytest.raises(RouterError, match=r"backend must be HOST:PORT, got 'nope'$"):
        call(paths, "add_backend", "myapp", "web", "nope")
    with pytest.raises(RouterError, match="invalid app name"):
        call(paths, "declare", "My App", "web")
    assert call(paths, "snapshot") == {}
    raw = httpx.Client(transport=httpx.HTTPTransport(uds=str(paths.socket)))
    with raw:
        assert raw.get("http://router/nowhere").status_code == 404
        bad = raw.post("http://router/routes/a/web/add", content=b"{not json")
        assert bad.status_code == 400 and bad.json() == {"error": "the body is not JSON"}
        assert raw.get("http://router/health").json()["pid"] == info.pid


def test_a_second_router_on_the_same_home_refuses(paths: Paths) -> None:
    first = lifecycle.start(paths, "127.0.0.1:0")
    with pytest.raises(RouterError, match="a router is already running on"):
        lifecycle.start(paths, "127.0.0.1:0")
    assert lifecycle.running(paths) == first
    # ensure() adopts the running router, whatever address is asked for.
    assert lifecycle.ensure(paths, f"127.0.0.1:{free_port()}") == (first, True)


def test_a_busy_port_is_one_line(paths: Paths) -> None:
    info = lifecycle.start(paths, "127.0.0.1:0")
    other = Paths(paths.home / "other")
    port = info.url.rsplit(":", 1)[1]
    with pytest.raises(RouterError, match=rf"cannot listen on 127.0.0.1:{port} for the router"):
        lifecycle.start(other, f"127.0.0.1:{port}")
    assert lifecycle.running(other) is None


def test_table_survives_a_restart(paths: Paths, backends: tuple[Backend, Backend]) -> None:
    a, b = backends
    first = lifecycle.start(paths, "127.0.0.1:0")
    call(paths, "set_backends", "myapp", "web", [a.addr, b.addr])
    call(paths, "declare", "myapp", "worker")
    saved = json.loads(paths.routes.read_text())
    assert saved["routes"] == {"myapp": {"web": [a.addr, b.addr], "worker": []}}
    assert lifecycle.stop(paths) == first
    assert not paths.info.exists() and not paths.socket.exists()

    port = first.url.rsplit(":", 1)[1]
    again = lifecycle.start(paths, f"127.0.0.1:{port}")
    assert again.pid != first.pid and again.url == first.url
    # Serves the saved table at once, before anyone has spoken to it.
    assert {get(again.url).headers["x-backend"] for _ in range(4)} == {"a", "b"}
    assert call(paths, "snapshot") == {"myapp": {"web": [a.addr, b.addr], "worker": []}}


def test_a_damaged_table_is_set_aside(paths: Paths) -> None:
    paths.routes.write_text("{half a file")
    info = lifecycle.start(paths, "127.0.0.1:0")
    assert get(info.url).status_code == 404
    assert paths.routes.with_name("routes.json.bad").read_text() == "{half a file"
    assert json.loads(paths.routes.read_text())["routes"] == {}


def test_draining_across_processes(paths: Paths, backends: tuple[Backend, Backend]) -> None:
    a, b = backends
    info = lifecycle.start(paths, "127.0.0.1:0")
    call(paths, "set_backends", "myapp", "web", [a.addr])
    assert call(paths, "wait_drained", a.addr, 5.0) is True  # nothing in flight

    with ThreadPoolExecutor(6) as pool:
        # Several connections, so that every router process has one of them in flight; 3 s,
        # so that some is left to drain after the changes below even on a loaded machine.
        slow = [pool.submit(get, info.url, "/slow?d=3") for _ in range(6)]
        time.sleep(0.5)  # the requests are on their way to a
        # What the runtime does: put the new process in, take the old one out, wait.
        call(paths, "add_backend", "myapp", "web", b.addr)
        call(paths, "remove_backend", "myapp", "web", a.addr)
        assert get(info.url).headers["x-backend"] == "b"
        assert call(paths, "wait_drained", a.addr, 0.1) is False
        started = time.monotonic()
        assert call(paths, "wait_drained", a.addr, 10.0) is True
        assert time.monotonic() - started > 0.3
        assert all(s.done() or s.running() for s in slow)
        answers = [s.result(timeout=10) for s in slow]
    assert {(r.status_code, r.headers["x-backend"]) for r in answers} == {(200, "a")}


def test_every_router_process_follows_the_table(
    paths: Paths, backends: tuple[Backend, Backend]
) -> None:
    a, b = backends
    info = lifecycle.start(paths, "127.0.0.1:0", workers=3)
    health = httpx.Client(transport=httpx.HTTPTransport(uds=str(paths.socket)))
    with health:
        workers = health.get("http://router/health").json()["workers"]
        assert len(workers) == 2

        def served() -> set[str]:
            # A new connection each time: the kernel spreads them over the processes.
            return {get(info.url).headers["x-backend"] for _ in range(40)}

        call(paths, "set_backends", "myapp", "web", [a.addr])
        assert served() == {"a"}
        call(paths, "set_backends", "myapp", "web", [b.addr])
        assert served() == {"b"}

        # A worker that dies is replaced, with the current table.
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while workers[0] in (now := health.get("http://router/health").json()["workers"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        while len(health.get("http://router/health").json()["workers"]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert served() == {"b"}
    assert lifecycle.stop(paths) == info
    for pid in now:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_stops_when_its_home_disowns_it(paths: Paths) -> None:
    # A router whose SHIPMATE_HOME was deleted could never be found or stopped again.
    proc = subprocess.Popen(
        [sys.executable, "-c", _DISOWN_QUICKLY, str(paths.home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while lifecycle.running(paths) is None:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        paths.info.unlink()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


_DISOWN_QUICKLY = """
import sys
from shipmate.router import daemon
daemon.DISOWNED_CHECK = 0.1
daemon.main(["--home", sys.argv[1], "--listen", "127.0.0.1:0"])
"""


# --- with a real rack -----------------------------------------------------------------------------


class Load:
    """Requests through the router from a few threads (kept-alive GETs and POSTs) until
    stopped; records every outcome."""

    def __init__(self, url: str, host: str, workers: int = 4) -> None:
        self.url, self.host = url, host
        self.stop = threading.Event()
        self.results: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers={"Host": self.host}, timeout=20) as c:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    if n % 2:
                        r = c.get("/")
                        ok = r.status_code == 200 and r.json()["release"]
                    else:
                        r = c.post("/", content=b"x" * 1000)
                        ok = r.status_code == 200 and r.json()["received"] == 1000
                    outcome = "ok" if ok else f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                with self.lock:
                    self.results.append(outcome)
                time.sleep(0.005)

    def count(self) -> int:
        with self.lock:
            return len(self.results)

    def finish(self) -> list[str]:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return self.results


def test_router_serves_while_the_rack_is_killed_and_restarted(tmp_path: Path) -> None:
    rack = start_rack(tmp_path)
    load = None
    try:
        rack.deploy("myapp")
        router_url = rack.info["router"]
        router = lifecycle.running(Paths(tmp_path))
        assert router is not None and router.url == router_url
        load = Load(router_url, "web.myapp.localhost")
        time.sleep(1)

        os.kill(int(rack.info["pid"]), signal.SIGKILL)
        served = load.count()
        time.sleep(3)  # the rack is gone: the router alone serves
        assert load.count() > served

        # The next rack adopts the running router (and says so when asked for another port).
        (tmp_path / "rack.json").unlink()
        rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:1")
        assert rack.info["router"] == router_url
        assert lifecycle.running(Paths(tmp_path)) == router
        assert "already running at" in (tmp_path / "rack.log").read_text()
        time.sleep(1)

        # A plain stop leaves the router serving too.
        rack.ok("rack", "stop")
        served = load.count()
        time.sleep(1)
        assert load.count() > served
        results = load.finish()
        load = None
        assert lifecycle.running(Paths(tmp_path)) == router

        # A router that dies while the rack runs is started again on its address, with its
        # table (requests fail only in the gap).
        rack.ok("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")
        os.kill(router.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (again := lifecycle.running(Paths(tmp_path))) is None or again.pid == router.pid:
            assert time.monotonic() < deadline, "the rack did not start the router again"
            time.sleep(0.1)
        assert again.url == router_url
        assert rack.get("myapp").status_code == 200
    finally:
        if load is not None:
            load.finish()
        stop_rack(rack)
    assert lifecycle.running(Paths(tmp_path)) is None
    failures = [r for r in results if r != "ok"]
    assert not failures, f"{len(failures)} of {len(results)} failed: {failures[:5]}"
    assert len(results) > 50
