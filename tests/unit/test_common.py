"""The small shared helpers: host:port, PID identity, atomic writes, waiting."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shipmate.common.addresses import join_host_port, split_host_port
from shipmate.common.files import atomic_write
from shipmate.common.pids import pid_alive, proc_start_time, same_process
from shipmate.common.waiting import WaitTimeout, poll_until, wait_for


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7070", ("127.0.0.1", 7070)),
        (":7080", ("127.0.0.1", 7080)),
        ("[::1]:7443", ("::1", 7443)),
        ("http://127.0.0.2:8000/path", ("127.0.0.2", 8000)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_split_host_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", "host:", "host:http", "host:0", "host:70000"])
def test_split_host_port_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_host_port(text)


def test_split_host_port_of_a_listen_address_admits_port_0() -> None:
    assert split_host_port("127.0.0.1:0", any_port=True) == ("127.0.0.1", 0)
    with pytest.raises(ValueError, match="from 0 to 65535"):
        split_host_port("127.0.0.1:x", any_port=True)


def test_join_host_port() -> None:
    assert join_host_port("::1", 80) == "[::1]:80"
    assert split_host_port(join_host_port("::1", 80)) == ("::1", 80)
    assert join_host_port("127.0.0.1", 80) == "127.0.0.1:80"


def test_pid_identity() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = proc_start_time(child.pid)
        assert start is not None
        assert same_process(child.pid, start)
        assert not same_process(child.pid, start + 1)
        assert pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not same_process(child.pid, start)
    assert not pid_alive(child.pid)
    assert proc_start_time(os.getpid()) is not None


def test_atomic_write(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, "one")
    atomic_write(target, b"two", mode=0o600)
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_poll_until() -> None:
    flag = threading.Event()
    threading.Timer(0.05, flag.set).start()
    assert poll_until(lambda: flag.is_set() and "ok", timeout=5, interval=0.01) == "ok"
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match="waiting for nothing"):
        poll_until(lambda: None, timeout=0.1, interval=0.01, what="nothing")
    assert time.monotonic() - started < 2


def test_wait_for() -> None:
    calls = []

    async def check() -> int | None:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else None

    assert asyncio.run(wait_for(check, timeout=5, interval=0.001)) == 3
    assert asyncio.run(wait_for(lambda: 7, timeout=1)) == 7
    with pytest.raises(WaitTimeout):
        asyncio.run(wait_for(lambda: 0, timeout=0.05, interval=0.01))


def test_image_ref_names_images_as_convox_does() -> None:
    from shipmate.domain.images import image_ref

    assert image_ref("registry.host/convox/", "myapp", "web", "BABCDEFGHI") == (
        "registry.host/convox/myapp:web.BABCDEFGHI"
    )
