#!/usr/bin/env python3
"""Rollback benchmark: from invoking `shipmate releases rollback` to the moment every answer
through the router comes from the target release, against the app's own boot time.

    python bench/rollback.py                       # ~4 minutes; table + bench/results/
    python bench/rollback.py --rollbacks 5 --boot 0 --counts 1

For each boot delay B (the example app sleeps B ms before listening) and each process count,
the app gets two releases that differ by one variable; the script then rolls back to one and
the other in turn. A client asks the router which release answers, on one kept-alive
connection, every ~2 ms; a rollback is done at the first answer after the last answer from
anything but the new release (the copy the rollback creates), confirmed by 20 in a row.

The floor is what the app itself needs: B plus its first successful health check, measured
by starting the same command (`/bin/sh -c 'python3 app.py'`, same PATH) by hand, `count` at
once, and probing /health every millisecond. Overhead = measured - floor: what shipmate adds
(the CLI's start-up, the API call, the database writes, the shim, health-check polling,
routing changes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness

# Between rollbacks: lets the processes taken out finish stopping, so each rollback starts on
# a quiet machine (their stopping is not on the measured path but it takes CPU).
SETTLE = 0.3


def rollbacks(
    rack: harness.Rack, app: str, targets: tuple[str, str], n: int, watcher: harness.Watcher
) -> list[dict[str, Any]]:
    runs = []
    for i in range(n):
        runs.append(harness.rollback_once(rack, app, targets[i % 2], watcher))
        time.sleep(SETTLE)
    return runs


def scenario(
    rack: harness.Rack, workdir: Path, count: int, boots: list[int], n: int, floor_rounds: int
) -> list[dict[str, Any]]:
    app = f"bench{count}"
    source = harness.app_copy(workdir, app, count)
    rack.run("apps", "create", app)
    rack.run("deploy", str(source), "-a", app)
    results = []
    with harness.Watcher(rack.router, app, pause=0.002) as watcher:
        for boot in boots:
            rack.run("env", "set", f"BOOT_DELAY_MS={boot}", "--promote", "-a", app)
            first = rack.active(app)
            rack.run("env", "set", f"FLIP={boot}", "--promote", "-a", app)
            second = rack.active(app)
            runs = rollbacks(rack, app, (first, second), n, watcher)
            floors = harness.boot_floor(source, boot, count, rounds=floor_rounds)
            floor = harness.median(floors)
            seconds = [r["seconds"] for r in runs]
            row = {
                "boot_ms": boot,
                "processes": count,
                "rollbacks": n,
                "p50_s": harness.percentile(seconds, 50),
                "p95_s": harness.percentile(seconds, 95),
                "floor_s": floor,
                "overhead_p50_s": harness.percentile(seconds, 50) - floor,
                "overhead_p95_s": harness.percentile(seconds, 95) - floor,
                "cli_p50_s": harness.percentile([r["cli_seconds"] for r in runs], 50),
                "failed_requests": sum(r["failed_requests"] for r in runs),
                "floors_s": floors,
                "runs": runs,
            }
            print(
                f"  B={boot:>4} ms  {count} process(es): p50 {row['p50_s'] * 1000:6.0f} ms  "
                f"floor {floor * 1000:6.0f} ms  "
                f"overhead p50 {row['overhead_p50_s'] * 1000:5.0f} ms",
                flush=True,
            )
            results.append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollbacks", type=int, default=20, help="per boot delay and count")
    parser.add_argument("--boot", type=int, nargs="+", default=[0, 500, 2000], metavar="MS")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4], metavar="N")
    parser.add_argument("--floor-rounds", type=int, default=5)
    parser.add_argument("--label", default="", help="stored in the JSON (e.g. before/after)")
    args = parser.parse_args()

    began = time.monotonic()
    result: dict[str, Any] = {
        "benchmark": "rollback",
        "started": harness.started_now(),
        "command": " ".join(["python bench/rollback.py", *sys.argv[1:]]),
        "label": args.label,
        "machine": harness.machine(),
        "parameters": {
            "rollbacks": args.rollbacks,
            "boot_ms": args.boot,
            "counts": args.counts,
            "floor_rounds": args.floor_rounds,
            "streak": harness.STREAK,
        },
    }
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="shipmate-bench-apps-") as tmp,
        harness.rack("rollback") as rack,
    ):
        for count in args.counts:
            rows += scenario(rack, Path(tmp), count, args.boot, args.rollbacks, args.floor_rounds)
    result["results"] = rows
    result["seconds"] = time.monotonic() - began

    print()
    print(
        f"{'boot':>6}{'procs':>6}{'p50 ms':>9}{'p95 ms':>9}{'floor ms':>10}"
        f"{'overhead p50':>14}{'overhead p95':>14}{'CLI p50 ms':>12}{'failed':>8}"
    )
    for r in rows:
        print(
            f"{r['boot_ms']:>6}{r['processes']:>6}{r['p50_s'] * 1e3:>9.0f}{r['p95_s'] * 1e3:>9.0f}"
            f"{r['floor_s'] * 1e3:>10.0f}{r['overhead_p50_s'] * 1e3:>14.0f}"
            f"{r['overhead_p95_s'] * 1e3:>14.0f}{r['cli_p50_s'] * 1e3:>12.0f}"
            f"{r['failed_requests']:>8}"
        )
    path = harness.write_result("rollback", result)
    print(f"\n{len(rows) * args.rollbacks} rollbacks in {result['seconds']:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
