"""Acceptance: the router drops nothing while a 2-process service is rolled back and forth.

A bounded load (kept-alive connections; GETs, small POSTs the router buffers and large POSTs
it streams) runs through the router while the test performs ten rollbacks between two
releases. Every request must succeed, and every request that started after a rollback
command returned must be answered by that rollback's release (the copy it created).
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from tests.integration.conftest import (
    EXAMPLE,
    reachable_home,
    remove_apps,
    remove_home,
    start_rack,
    stop_rack,
)

DURATION = 30.0  # seconds of load, at least
CONCURRENCY = 16
ROLLBACKS = 10
BODIES = (b"", b"p" * 1000, b"q" * 100_000)  # none, buffered by the router, streamed by it


@dataclass(frozen=True)
class Outcome:
    started: float
    method: str
    release: str | None  # who answered; None when the request failed
    problem: str | None


class Load:
    def __init__(self, url: str, host: str) -> None:
        self.url, self.host = url, host
        self.done = threading.Event()
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._worker, args=(i,), daemon=True)
            for i in range(CONCURRENCY)
        ]
        for thread in self.threads:
            thread.start()

    def _worker(self, index: int) -> None:
        # One client per worker: one kept-alive connection each, as a browser or an API
        # client holds it across the rollbacks.
        with httpx.Client(base_url=self.url, headers={"Host": self.host}, timeout=30) as client:
            n = index
            while not self.done.is_set():
                n += 1
                body = BODIES[n % len(BODIES)]
                started = time.monotonic()
                method = "POST" if body else "GET"
                try:
                    resp = client.request(method, "/", content=body or None)
                    data = resp.json() if resp.status_code == 200 else {}
                    if resp.status_code != 200:
                        outcome = Outcome(started, method, None, f"{resp.status_code} {resp.text}")
                    elif body and data.get("received") != len(body):
                        problem = f"sent {len(body)} bytes, the app received {data.get('received')}"
                        outcome = Outcome(started, method, None, problem)
                    else:
                        outcome = Outcome(started, method, data["release"], None)
                except (httpx.HTTPError, ValueError) as exc:
                    outcome = Outcome(started, method, None, f"{type(exc).__name__}: {exc}")
                with self.lock:
                    self.outcomes.append(outcome)

    def stop(self) -> list[Outcome]:
        self.done.set()
        for thread in self.threads:
            thread.join(60)
        return self.outcomes


def two_process_app(where: Path) -> Path:
    source = where / "zd"
    shutil.copytree(EXAMPLE, source)
    manifest = yaml.safe_load((source / "shipmate.yml").read_text())
    manifest["services"]["web"]["scale"] = {"count": 2}
    (source / "shipmate.yml").write_text(yaml.safe_dump(manifest))
    return source


def test_ten_rollbacks_under_load_drop_nothing(tmp_path: Path) -> None:
    home = reachable_home(tmp_path / "rack")
    rack = start_rack(home)
    load: Load | None = None
    rollbacks: list[tuple[float, float, str, str]] = []  # command start, return, target, copy
    try:
        out = rack.deploy("zd", two_process_app(tmp_path))
        r1 = re.search(r"^Release: (R[A-Z]{9})$", out, re.M).group(1)  # type: ignore[union-attr]
        out = rack.ok("env", "set", "FOO=two", "--promote", "-a", "zd")
        r2 = re.search(r"^Release: (R[A-Z]{9})$", out, re.M).group(1)  # type: ignore[union-attr]

        load = Load(rack.info["router"], "web.zd.localhost")
        began = time.monotonic()
        time.sleep(1)
        for i in range(ROLLBACKS):
            target = r1 if i % 2 == 0 else r2
            issued = time.monotonic()
            out = rack.ok("releases", "rollback", target, "-a", "zd")
            returned = time.monotonic()
            copy = re.search(r"^OK, (R[A-Z]{9})$", out, re.M).group(1)  # type: ignore[union-attr]
            rollbacks.append((issued, returned, target, copy))
            time.sleep(0.5)
        time.sleep(max(1.0, began + DURATION - time.monotonic()))
        ended = time.monotonic()
        outcomes = load.stop()
        load = None
        releases = {r["id"]: r for r in rack.releases("zd")}
    finally:
        if load is not None:
            load.stop()
        remove_apps(rack)
        stop_rack(rack)
        remove_home(home)

    took = ", ".join(f"{returned - issued:.1f}" for issued, returned, _, _ in rollbacks)
    print(
        f"\n{len(outcomes)} requests ({sum(o.method == 'POST' for o in outcomes)} POSTs) in "
        f"{ended - began:.0f}s from {CONCURRENCY} kept-alive connections, "
        f"{sum(o.problem is not None for o in outcomes)} failed; rollbacks took {took}s"
    )
    assert ended - began >= DURATION
    failed = [o for o in outcomes if o.problem is not None]
    assert not failed, f"{len(failed)} of {len(outcomes)} requests failed, e.g. {failed[:3]}"
    posts = [o for o in outcomes if o.method == "POST"]
    assert len(outcomes) > 500 and len(posts) > 200, len(outcomes)

    for index, (_, returned, target, copy) in enumerate(rollbacks):
        # The rollback made a new release, a copy of its target, and that copy serves.
        assert releases[copy]["copied_from"] == target
        until = rollbacks[index + 1][0] if index + 1 < len(rollbacks) else ended
        window = [o for o in outcomes if returned < o.started < until]
        assert window, f"no request between rollback {index + 1} and the next"
        stray = [o for o in window if o.release != copy]
        assert not stray, (
            f"after rollback {index + 1} to {target} (copy {copy}) returned, "
            f"{len(stray)} of {len(window)} requests were answered by {stray[0].release}"
        )
