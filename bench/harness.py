"""What the rollback, deploy and zero-downtime benchmarks share: a real rack in a temporary
SHIPMATE_HOME driven by the real CLI, a client that watches which release answers through
the router, the app's own boot time measured without shipmate, and the machine's description.

Not a test helper: the benchmarks run as plain scripts (`python bench/rollback.py`), so this
module must not import anything from tests/.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hello"
RESULTS = ROOT / "bench" / "results"
# Answers in a row from the new release that confirm a rollback is over.
STREAK = 20
# Between two questions of the watcher: each costs ~1 ms of CPU in the router and the client,
# so asking without pause would take half a core of a 2-core machine away from the rollback
# it measures; 10 ms keeps that near a tenth, for a resolution of ~6 ms.
WATCH_INTERVAL = 0.01


def cli() -> list[str]:
    # The console script of the interpreter running the benchmark (.venv/bin/shipmate after
    # the README's set-up), never another one on PATH: its start-up is part of what we measure.
    script = Path(sys.executable).parent / "shipmate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "shipmate.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env() -> dict[str, str]:
    """The environment of the rack and of the app run by hand: the same `python3` for both
    (the benchmark's interpreter first on PATH), and nothing of another rack but the
    isolation switch (SHIPMATE_ISOLATION=off measures the rack without app users)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SHIPMATE_") or k == "SHIPMATE_ISOLATION"
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    return env


@dataclass
class Rack:
    home: Path
    env: dict[str, str]
    info: dict[str, Any] = field(default_factory=dict)

    def run(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*cli(), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise SystemExit(
                f"ERROR: shipmate {' '.join(args)} failed: {done.stderr.strip() or done.stdout}"
            )
        return done

    @property
    def router(self) -> str:
        return str(self.info["router"])

    def releases(self, app: str) -> list[dict[str, Any]]:
        return list(json.loads(self.run("releases", "-a", app, "--json").stdout))

    def active(self, app: str) -> str:
        return next(str(r["id"]) for r in self.releases(app) if r["active"])

    @property
    def pid(self) -> int:
        return int(self.info["pid"])


@contextlib.contextmanager
def rack(prefix: str, pythonpath: Path | None = None) -> Iterator[Rack]:
    """A rack on free loopback ports in a temporary SHIPMATE_HOME, stopped with everything it
    started (`rack stop --all`: its router and app processes too) whatever happens.

    `pythonpath`: run the CLI and the rack from that checkout rather than the installed one.
    """
    with tempfile.TemporaryDirectory(prefix=f"shipmate-bench-{prefix}-") as tmp:
        # Passable by others, so that (as root) app users reach their builds and the apps run
        # isolated, as on a real rack (docs/SECURITY.md).
        os.chmod(tmp, 0o711)
        home = Path(tmp) / "home"
        home.mkdir()
        env = base_env()
        env["SHIPMATE_HOME"] = str(home)
        if pythonpath is not None:
            env["PYTHONPATH"] = str(pythonpath)
        r = Rack(home, env)
        r.run("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")
        r.info = json.loads((home / "rack.json").read_text())
        try:
            yield r
        finally:
            # Deleting the apps removes their users (as root); stopping the rack would not.
            apps = r.run("apps", "--json", check=False)
            if apps.returncode == 0:
                for app in json.loads(apps.stdout):
                    try:
                        r.run("apps", "delete", app["name"], check=False, timeout=120)
                    except subprocess.TimeoutExpired:
                        # A rack of before issue 10 never finishes a delete while another
                        # app runs: stopping it below (--all) still ends every process.
                        print(f"apps delete {app['name']} timed out: stopping", file=sys.stderr)
            done = r.run("rack", "stop", "--all", check=False, timeout=120)
            if done.returncode != 0:
                for name in ("rack.json", "router.json"):
                    with contextlib.suppress(OSError, ValueError, KeyError, ProcessLookupError):
                        os.kill(int(json.loads((home / name).read_text())["pid"]), signal.SIGKILL)


def app_copy(workdir: Path, name: str, count: int = 1, source: Path = EXAMPLE) -> Path:
    """A copy of examples/hello whose manifest runs `count` processes of `web`."""
    target = workdir / name
    shutil.copytree(source, target)
    manifest = (
        "environment:\n"
        "  - GREETING=hello\n"
        "services:\n"
        "  web:\n"
        "    command: python3 app.py\n"
        "    port: 5000\n"
        "    health: /health\n"
        f"    scale:\n      count: {count}\n"
        "    termination:\n      grace: 10\n"
    )
    (target / "shipmate.yml").write_text(manifest)
    return target


class Watcher:
    """Asks the router which release answers, every WATCH_INTERVAL, on one kept-alive
    connection (the router picks a process per request, round robin), from a thread."""

    def __init__(self, router: str, app: str, pause: float = WATCH_INTERVAL) -> None:
        host, _, port = router.removeprefix("http://").rpartition(":")
        self.address = (host, int(port))
        self.host = f"web.{app}.localhost"
        self.pause = pause
        self.samples: list[tuple[float, str]] = []  # (monotonic time answered, release or "!")
        self._stop = threading.Event()
        self._active = threading.Event()
        self._active.set()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Only ask within this block (another rack's rollback may be measured meanwhile)."""
        self._active.set()
        time.sleep(0.05)  # answers from before the rollback, to tell the switch from
        try:
            yield
        finally:
            self._active.clear()

    def idle(self) -> None:
        self._active.clear()

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            if not self._active.is_set():
                time.sleep(0.01)
                continue
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(*self.address, timeout=10)
                conn.request("GET", "/", headers={"Host": self.host})
                response = conn.getresponse()
                body = response.read()
                release = str(json.loads(body)["release"]) if response.status == 200 else "!"
            except (OSError, http.client.HTTPException, ValueError):
                release = "!"
                if conn is not None:
                    conn.close()
                conn = None
            self.samples.append((time.monotonic(), release))
            if self.pause:
                time.sleep(self.pause)

    def wait_for(
        self, release: str, after: float, streak: int = STREAK, timeout: float = 60
    ) -> None:
        """Block until `streak` answers in a row after `after` came from `release`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tail = [r for t, r in self.samples[-streak:] if t > after]
            if len(tail) == streak and all(r == release for r in tail):
                return
            time.sleep(0.005)
        raise SystemExit(f"ERROR: the router did not settle on release {release} in {timeout}s")

    def switched_at(self, release: str, after: float) -> float | None:
        """The moment from which every answer came from `release`: the time of the first
        answer after the last answer from anything else (None if it never settled)."""
        window = [(t, r) for t, r in self.samples if t > after]
        last_other = max((i for i, (_, r) in enumerate(window) if r != release), default=-1)
        if last_other + 1 >= len(window):
            return None
        if last_other < 0:
            return window[0][0]
        # The switch happened between the last other answer and the first good one: the
        # midpoint is the estimate, the gap between them the resolution.
        return (window[last_other][0] + window[last_other + 1][0]) / 2

    def errors(self, after: float) -> int:
        return sum(1 for t, r in self.samples if t > after and r == "!")


def rollback_once(rack: Rack, app: str, target: str, watcher: Watcher) -> dict[str, Any]:
    """Roll `app` back to `target`; seconds from invoking the CLI to the moment every answer
    through the router comes from the new release (the copy of `target`)."""
    start = time.monotonic()
    done = rack.run("releases", "rollback", target, "-a", app)
    cli_done = time.monotonic()
    match = re.search(r"^OK, (\S+)$", done.stdout, re.M)
    if match is None:
        raise SystemExit(f"ERROR: unexpected output of `releases rollback`: {done.stdout}")
    new = match.group(1)
    watcher.wait_for(new, after=start, streak=STREAK)
    switched = watcher.switched_at(new, after=start)
    assert switched is not None
    return {
        "target": target,
        "release": new,
        "seconds": switched - start,
        "cli_seconds": cli_done - start,
        "failed_requests": watcher.errors(after=start),
    }


def boot_floor(
    app_dir: Path, boot_ms: int, count: int = 1, needed: int = 1, rounds: int = 5
) -> dict[str, list[float]]:
    """The app's own boot without shipmate: seconds from starting `count` processes the way
    the runtime does (`/bin/sh -c 'python3 app.py'` in the app's directory, same PATH) until
    `needed` of them ("needed"), and all of them ("all"), answered their first successful
    health check, probed every millisecond."""
    results: dict[str, list[float]] = {"needed": [], "all": []}
    for _ in range(rounds):
        ports = [free_port() for _ in range(count)]
        procs: list[subprocess.Popen[bytes]] = []
        start = time.monotonic()
        for port in ports:
            procs.append(
                subprocess.Popen(
                    ["/bin/sh", "-c", "python3 app.py"],
                    cwd=app_dir,
                    env={**base_env(), "PORT": str(port), "BOOT_DELAY_MS": str(boot_ms)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        try:
            waiting = set(ports)
            while waiting:
                for port in list(waiting):
                    if _healthy(port):
                        waiting.discard(port)
                        if len(ports) - len(waiting) == needed:
                            results["needed"].append(time.monotonic() - start)
                if time.monotonic() - start > 60:
                    raise SystemExit("ERROR: the app did not answer /health within 60s")
                if waiting:
                    time.sleep(0.001)
            results["all"].append(time.monotonic() - start)
        finally:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return results


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p50 of 20 values: the 10th smallest; p95: the 19th)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit + ("+changes" if dirty else ""),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def started_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
