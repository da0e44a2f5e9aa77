#!/usr/bin/env python3
"""shipmate's rollback on Swarm against `docker service rollback`, in one run, same machine,
same app image (examples/hello as the rack builds it).

    scripts/engine-up.sh && .venv/bin/python bench/swarm_rollback.py --rollbacks 5

A client sends one request every 50 ms through each front door (shipmate's router; the Swarm
service's host port). For each rollback: wall time from the command's start until every
answer comes from the target (the last answer from anything else, or failed, is before it),
and the requests that failed meanwhile. Swarm is tuned as well as it allows here: `--init`,
monitor 2 s, a healthcheck every second; a fixed host port (there is no routing mesh without
IPVS) forbids start-first on one node, so its update and rollback orders are stop-first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ENGINE = Path(os.environ.get("SHIPMATE_ENGINE_DIR") or "/var/lib/shipmate-engine")
SWARM_PORT = 18089


class Prober:
    def __init__(self, url: str, host: str) -> None:
        self.url, self.host = url, host
        self.seen: list[tuple[float, str | None]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            at = time.monotonic()
            try:
                r = httpx.get(self.url, headers={"Host": self.host}, timeout=2)
                who = r.json()["release"] if r.status_code == 200 else None
            except Exception:
                who = None
            self.seen.append((at, who))
            time.sleep(max(0.0, 0.05 - (time.monotonic() - at)))

    def measure(self, began: float, target: str, settle: float = 3.0) -> tuple[float, int]:
        time.sleep(settle)
        after = [(t, w) for t, w in self.seen if t >= began]
        wrong = [t for t, w in after if w != target]
        failed = sum(1 for _, w in after if w is None)
        return ((max(wrong) + 0.05 - began) if wrong else 0.0), failed


def shipmate_side(rollbacks: int) -> list[tuple[float, int]]:
    home = Path(tempfile.mkdtemp(prefix="shipmate-bench-"))
    env = {**os.environ, "SHIPMATE_HOME": str(home)}
    cli = [str(ROOT / ".venv/bin/shipmate")]

    def ok(*args: str) -> str:
        return subprocess.run(
            [*cli, *args], env=env, check=True, capture_output=True, text=True
        ).stdout

    ok(
        "rack",
        "start",
        "--detach",
        "--api",
        "127.0.0.1:0",
        "--router",
        "127.0.0.1:0",
        "--runtime",
        "swarm",
        "--registry",
        engine["SHIPMATE_REGISTRY"],
        "--docker-host",
        engine["DOCKER_HOST"],
    )
    try:
        ok("apps", "create", "bench")
        r1 = re.findall(
            r"^Release: (R\w+)$", ok("deploy", str(ROOT / "examples/hello"), "-a", "bench"), re.M
        )[0]
        r2 = re.findall(
            r"^Release: (R\w+)$", ok("env", "set", "FOO=two", "--promote", "-a", "bench"), re.M
        )[0]
        router = json.loads((home / "rack.json").read_text())["router"]
        prober = Prober(router + "/", "web.bench.localhost")
        results = []
        for i in range(rollbacks):
            began = time.monotonic()
            out = ok("releases", "rollback", r1 if i % 2 == 0 else r2, "-a", "bench")
            copy = re.findall(r"^OK, (R\w+)$", out, re.M)[0]
            results.append(prober.measure(began, copy))
        prober.done.set()
        return results
    finally:
        subprocess.run([*cli, "apps", "delete", "bench"], env=env, capture_output=True)
        subprocess.run([*cli, "rack", "stop", "--all"], env=env, capture_output=True)


def swarm_side(rollbacks: int, image: str) -> list[tuple[float, int]]:
    docker = ["/usr/bin/docker", "-H", engine["DOCKER_HOST"]]
    name = "bench-swarm-rollback"
    subprocess.run([*docker, "service", "rm", name], capture_output=True)
    subprocess.run(
        [
            *docker,
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--init",
            "--no-resolve-image",
            "--publish",
            f"mode=host,published={SWARM_PORT},target=5000",
            "--env",
            "PORT=5000",
            "--env",
            "BIND_ADDRESS=0.0.0.0",
            "--env",
            "RELEASE=one",
            "--health-cmd",
            "python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:5000/health')\"",
            "--health-interval",
            "1s",
            "--health-start-period",
            "1s",
            "--update-monitor",
            "2s",
            "--update-order",
            "stop-first",
            "--rollback-monitor",
            "2s",
            "--rollback-order",
            "stop-first",
            "--stop-grace-period",
            "10s",
            image,
            "sh",
            "-c",
            "python3 app.py",
        ],
        check=True,
        capture_output=True,
    )
    url = f"http://127.0.0.1:{SWARM_PORT}/"
    prober = Prober(url, "swarm")
    time.sleep(6)
    subprocess.run(
        [*docker, "service", "update", "--env-add", "RELEASE=two", name],
        check=True,
        capture_output=True,
    )
    results = []
    try:
        target = "one"
        for _ in range(rollbacks):
            began = time.monotonic()
            subprocess.run([*docker, "service", "rollback", name], check=True, capture_output=True)
            results.append(prober.measure(began, target))
            target = "two" if target == "one" else "one"
    finally:
        prober.done.set()
        subprocess.run([*docker, "service", "rm", name], capture_output=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollbacks", type=int, default=5)
    args = parser.parse_args()
    ours = shipmate_side(args.rollbacks)
    images = subprocess.run(
        [
            "/usr/bin/docker",
            "-H",
            engine["DOCKER_HOST"],
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    image = next(i for i in images if "/bench:web." in i)
    theirs = swarm_side(args.rollbacks, image)
    for label, results in (("shipmate", ours), ("docker service rollback", theirs)):
        walls = [w for w, _ in results]
        print(
            f"{label}: wall p50 {statistics.median(walls):.2f}s max {max(walls):.2f}s; "
            f"failed requests per rollback {[f for _, f in results]}; "
            f"walls {[round(w, 2) for w in walls]}"
        )


engine = dict(line.split("=", 1) for line in (ENGINE / "env").read_text().split())
if __name__ == "__main__":
    main()
