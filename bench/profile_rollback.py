#!/usr/bin/env python3
"""Where a rollback's time goes: the timeline of its platform events, with and without the
CLI, and (with --py-spy) what the rack's event loop and the CLI spend their CPU on.

    python bench/profile_rollback.py                         # 1 process, ~1 minute
    python bench/profile_rollback.py --count 4
    python bench/profile_rollback.py --py-spy                # needs py-spy (pip install py-spy)
    python bench/profile_rollback.py --pythonpath DIR        # another checkout's code

Timeline: the example app (no boot delay) is rolled back `--rollbacks` times by a POST to the
API alone, then as many times by the CLI; for each, the time after the POST was sent (or the
CLI invoked) of every platform event of the rollback (from the state store, to the
microsecond) and of the router's switch (as in bench/rollback.py). Medians are printed: the
gaps between lines are the steps of the rollback, and "Running => Pending" with the CLI minus
without it is the CLI's own start-up.

--py-spy samples the rack during the CLI's rollbacks (`py-spy record --idle -p RACK`) and
prints where the event loop was busy (not waiting in epoll), per rollback; then samples a few
CLI runs (`py-spy record -- shipmate releases rollback ...`) and prints their top frames.
Sampling slows what it samples: use the timeline for durations, the profile for shares.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness
import httpx

STEPS = (
    "Running => Pending",
    "Pending => Updating",
    "Scaled up",
    "Created process",
    "Started process",
    "Healthy",
    "Stopping",
    "Updating => Running",
)
SAMPLE_RATE = 200  # py-spy samples per second
# Busy samples of the rack's event loop, by the first of these frames found in the stack.
PARTS = (
    ("router admin calls (RemoteRoutes)", "RemoteRoutes._call"),
    ("promotion events stream to the CLI (SSE)", "promotion_events"),
    ("runtime events written (EventLog.emit)", "EventLog.emit"),
    ("promotion state written (PromotionRun.advance)", "PromotionRun.advance"),
    ("POST rollback (copy, promotion row)", "routes.py:2"),
    ("authentication (token lookup)", "require_token"),
    ("health checks", "wait_healthy"),
    ("process start (shim spawn, state.json)", "LocalProcess.spawn"),
    ("process stop (drain, SIGTERM)", "LocalRuntime._stop"),
    ("HTTP server plumbing (uvicorn, starlette)", "RequestResponseCycle"),
)


def stamp(value: str) -> float:
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


def timeline(
    rack: harness.Rack, app: str, targets: tuple[str, str], n: int, via: str
) -> dict[str, list[float]]:
    """Milliseconds from the start of each rollback to each step, `via` the CLI or the API."""
    db = sqlite3.connect(rack.home / "shipmate.db")
    token = (rack.home / "token").read_text().strip()
    api = httpx.Client(base_url=rack.info["api"], headers={"Authorization": f"Bearer {token}"})
    steps: dict[str, list[float]] = collections.defaultdict(list)
    with harness.Watcher(rack.router, app) as watcher:
        for i in range(n):
            last_id = db.execute("SELECT max(id) FROM events").fetchone()[0]
            time.sleep(0.05)
            wall, start = time.time(), time.monotonic()
            if via == "cli":
                new = harness.rollback_once(rack, app, targets[i % 2], watcher)["release"]
            else:
                path = f"/apps/{app}/releases/{targets[i % 2]}/rollback"
                new = api.post(path, json={}).raise_for_status().json()["release"]["id"]
                steps["POST answered"].append((time.monotonic() - start) * 1e3)
                watcher.wait_for(new, after=start)
            switched = watcher.switched_at(new, after=start)
            assert switched is not None
            steps["router switched"].append((switched - start) * 1e3)
            while db.execute(
                "SELECT count(*) FROM promotions WHERE app = ? AND finished_at IS NULL", (app,)
            ).fetchone()[0]:
                time.sleep(0.01)
            first: dict[str, float] = {}
            last: dict[str, float] = {}  # with 4 processes, most steps happen 4 times
            for created, message in db.execute(
                "SELECT created_at, message FROM events WHERE app = ? AND id > ? ORDER BY id",
                (app, last_id),
            ):
                step = next((s for s in STEPS if s in message), None)
                if step is not None:
                    first.setdefault(step, (stamp(created) - wall) * 1e3)
                    last[step] = (stamp(created) - wall) * 1e3
            for step, at in first.items():
                steps[step].append(at)
                steps[step + " (last)"].append(last[step])
            time.sleep(0.2)
    db.close()
    api.close()
    return steps


def print_timeline(title: str, steps: dict[str, list[float]]) -> dict[str, float]:
    order = ["POST answered", *STEPS, "router switched"]
    medians = {}
    print(f"\n{title} (median ms after the start)")
    for key in order + [s + " (last)" for s in ("Started process", "Healthy", "Stopping")]:
        if steps.get(key):
            medians[key] = harness.median(steps[key])
            print(f"  {key:<28}{medians[key]:>8.1f}")
    return medians


def rack_profile(raw: Path, rollbacks: int) -> list[tuple[str, float]]:
    """Busy milliseconds of the event loop per rollback, by part, from py-spy's raw output."""
    parts: collections.Counter[str] = collections.Counter()
    frames: collections.Counter[str] = collections.Counter()
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "run_forever" not in stack or stack.endswith("EpollSelector.select (selectors.py:468)"):
            continue  # another thread, or the loop waiting for something to do
        n = int(count)
        busy += n
        parts[next((name for name, key in PARTS if key in stack), "other")] += n
        for frame in dict.fromkeys(f for f in stack.split(";") if "shipmate/" in f):
            frames[frame] += n
    per = 1000 / SAMPLE_RATE / rollbacks
    print(f"\nrack event loop: {busy * per:.0f} ms busy per rollback (py-spy, {SAMPLE_RATE}/s)")
    for name, n in parts.most_common():
        print(f"  {n * per:7.1f} ms  {name}")
    print("  top frames of shipmate's own code (inclusive; the event loop's own left out):")
    for frame, n in [(f, n) for f, n in frames.most_common() if n < 0.9 * busy][:12]:
        print(f"  {n * per:7.1f} ms  {frame[:100]}")
    return [(name, n * per) for name, n in parts.most_common()]


def cli_profile(rack: harness.Rack, app: str, targets: tuple[str, str], runs: int) -> None:
    frames: collections.Counter[str] = collections.Counter()
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            out = Path(tmp) / f"cli-{i}.txt"
            spy = ["py-spy", "record", "-r", str(SAMPLE_RATE), "-f", "raw", "-o", str(out)]
            subprocess.run(
                [*spy, "--", *harness.cli(), "releases", "rollback", targets[i % 2], "-a", app],
                env=rack.env,
                capture_output=True,
                check=True,
            )
            for line in out.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                total += int(count)
                for frame in dict.fromkeys(stack.split(";")):
                    frames[frame] += int(count)
            time.sleep(0.5)
    per = 1000 / SAMPLE_RATE / runs
    print(f"\nCLI `releases rollback`: {total * per:.0f} ms sampled per run; top frames:")
    for frame, n in frames.most_common(24):
        print(f"  {n * per:7.1f} ms  {frame[:100]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollbacks", type=int, default=15, help="per mode (API, CLI)")
    parser.add_argument("--count", type=int, default=1, help="processes of the app")
    parser.add_argument("--py-spy", action="store_true", help="sample the rack and the CLI")
    parser.add_argument("--pythonpath", type=Path, help="run another checkout's code")
    args = parser.parse_args()
    if args.py_spy and shutil.which("py-spy") is None:
        raise SystemExit("ERROR: py-spy is not installed: pip install py-spy")

    result: dict[str, Any] = {
        "benchmark": "profile_rollback",
        "started": harness.started_now(),
        "command": " ".join(["python bench/profile_rollback.py", *sys.argv[1:]]),
        "machine": harness.machine(),
        "parameters": {"rollbacks": args.rollbacks, "count": args.count},
    }
    with (
        tempfile.TemporaryDirectory(prefix="shipmate-bench-") as tmp,
        harness.rack("profile", pythonpath=args.pythonpath) as rack,
    ):
        app = "prof"
        source = harness.app_copy(Path(tmp), app, args.count)
        rack.run("apps", "create", app)
        rack.run("deploy", str(source), "-a", app)
        first = rack.active(app)
        rack.run("env", "set", "FLIP=1", "--promote", "-a", app)
        targets = (first, rack.active(app))
        api = timeline(rack, app, targets, args.rollbacks, "api")
        result["api_ms"] = print_timeline("API alone", api)
        cli = timeline(rack, app, targets, args.rollbacks, "cli")
        result["cli_ms"] = print_timeline("CLI", cli)
        if args.py_spy:
            # Apart from the timelines above: sampling slows the rack down.
            raw = Path(tmp) / "rack.txt"
            record = ["py-spy", "record", "--idle", "-r", str(SAMPLE_RATE), "-f", "raw"]
            spy = subprocess.Popen(
                [*record, "-o", str(raw), "-p", str(rack.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
            timeline(rack, app, targets, args.rollbacks, "cli")
            spy.send_signal(2)
            spy.wait(timeout=60)
            result["rack_busy_ms"] = rack_profile(raw, args.rollbacks)
            cli_profile(rack, app, targets, 5)
    path = harness.write_result("profile_rollback", result)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
