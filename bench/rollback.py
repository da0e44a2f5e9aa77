#!/usr/bin/env python3
"""Rollback benchmark: from invoking `shipmate releases rollback` to the moment every answer
through the router comes from the target release, against the app's own boot time.

    python bench/rollback.py                       # ~4 minutes; table + bench/results/
    python bench/rollback.py --rollbacks 5 --boot 0 --counts 1
    python bench/rollback.py --against /tmp/old    # interleaved with another checkout

For each boot delay B (the example app sleeps B ms before listening) and each process count,
the app gets two releases that differ by one variable; the script then rolls back to one and
the other in turn. A client asks the router which release answers, on one kept-alive
connection, every ~10 ms; a rollback is done midway between the last answer from anything
but the new release (the copy the rollback creates) and the first of 20 in a row from it.

The floor is what the app itself needs: B plus its first successful health check, measured
by starting the same command (`/bin/sh -c 'python3 app.py'`, same PATH) by hand, `count` at
once, between rollbacks (so under the same load), and probing /health every millisecond,
until as many processes answer as the rollout waits for before it takes the last old process
out (with the default `minimum: 50`, 1 of 1 and 2 of 4; the time for all of them is recorded
too). Overhead = measured - floor: what shipmate adds (the CLI's start-up, the API call,
database writes, the shim, health-check polling, routing changes).

`--against DIR` runs a second rack from another checkout of shipmate (its code first on
PYTHONPATH, e.g. `git archive <commit> | tar -x -C DIR`) and alternates rollbacks between the
two racks, so that both see the same load on a shared machine: a before-and-after comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness

# Between rollbacks: lets the processes taken out finish stopping, so each rollback starts on
# a quiet machine (their stopping is not on the measured path but it takes CPU).
SETTLE = 0.2
# The manifest's default `deployment.minimum` (percent of count kept healthy).
MINIMUM = 50


def row(
    label: str, boot: int, count: int, runs: list[dict[str, Any]], floors: dict[str, list[float]]
) -> dict[str, Any]:
    seconds = [r["seconds"] for r in runs]
    floor = harness.median(floors["needed"])
    return {
        "rack": label,
        "boot_ms": boot,
        "processes": count,
        "rollbacks": len(runs),
        "p50_s": harness.percentile(seconds, 50),
        "p95_s": harness.percentile(seconds, 95),
        "floor_s": floor,
        "floor_all_s": harness.median(floors["all"]),
        "overhead_p50_s": harness.percentile(seconds, 50) - floor,
        "overhead_p95_s": harness.percentile(seconds, 95) - floor,
        "cli_p50_s": harness.percentile([r["cli_seconds"] for r in runs], 50),
        "failed_requests": sum(r["failed_requests"] for r in runs),
        "floors_s": floors,
        "runs": runs,
    }


def scenario(
    racks: dict[str, harness.Rack],
    workdir: Path,
    count: int,
    boots: list[int],
    n: int,
    floor_every: int,
) -> list[dict[str, Any]]:
    app = f"bench{count}"
    source = harness.app_copy(workdir, app, count)
    for rack in racks.values():
        rack.run("apps", "create", app)
        rack.run("deploy", str(source), "-a", app)
    results = []
    with contextlib.ExitStack() as stack:
        watchers = {
            label: stack.enter_context(harness.Watcher(rack.router, app))
            for label, rack in racks.items()
        }
        for watcher in watchers.values():
            watcher.idle()  # each asks only while its own rack rolls back
        for boot in boots:
            targets = {}
            for label, rack in racks.items():
                rack.run("env", "set", f"BOOT_DELAY_MS={boot}", "--promote", "-a", app)
                first = rack.active(app)
                rack.run("env", "set", f"FLIP={boot}", "--promote", "-a", app)
                targets[label] = (first, rack.active(app))
            runs: dict[str, list[dict[str, Any]]] = {label: [] for label in racks}
            floors: dict[str, list[float]] = {"needed": [], "all": []}
            needed = math.ceil(count * MINIMUM / 100)
            for i in range(n):
                for label, rack in racks.items():
                    watcher = watchers[label]
                    with watcher.active():
                        runs[label].append(
                            harness.rollback_once(rack, app, targets[label][i % 2], watcher)
                        )
                    time.sleep(SETTLE)
                if i % floor_every == 0:
                    # Between rollbacks, so that the floor sees the same load as they do.
                    sample = harness.boot_floor(source, boot, count, needed, rounds=1)
                    for key, values in sample.items():
                        floors[key] += values
            for label in racks:
                results.append(row(label, boot, count, runs[label], floors))
                r = results[-1]
                print(
                    f"  {label:<8} B={boot:>4} ms  {count} process(es): p50 "
                    f"{r['p50_s'] * 1e3:6.0f} ms  floor {r['floor_s'] * 1e3:6.0f} ms  "
                    f"overhead p50 {r['overhead_p50_s'] * 1e3:5.0f} ms",
                    flush=True,
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollbacks", type=int, default=20, help="per boot delay and count")
    parser.add_argument("--boot", type=int, nargs="+", default=[0, 500, 2000], metavar="MS")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4], metavar="N")
    parser.add_argument(
        "--floor-every", type=int, default=4, metavar="N", help="a floor sample every N rollbacks"
    )
    parser.add_argument("--against", type=Path, metavar="DIR", help="another checkout")
    parser.add_argument("--label", default="", help="stored in the JSON (e.g. before/after)")
    args = parser.parse_args()
    if args.against is not None and not (args.against / "shipmate" / "__init__.py").is_file():
        raise SystemExit(f"ERROR: {args.against} is not a checkout of shipmate")

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
            "floor_every": args.floor_every,
            "watcher_interval_s": harness.WATCH_INTERVAL,
            "streak": harness.STREAK,
            "against": str(args.against) if args.against else None,
        },
    }
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shipmate-bench-")))
        racks = {"this": stack.enter_context(harness.rack("rollback"))}
        if args.against is not None:
            racks["against"] = stack.enter_context(
                harness.rack("rollback-against", pythonpath=args.against.resolve())
            )
        for count in args.counts:
            workdir = tmp / str(count)
            workdir.mkdir()
            rows += scenario(racks, workdir, count, args.boot, args.rollbacks, args.floor_every)
    result["results"] = rows
    result["seconds"] = time.monotonic() - began

    print()
    print(
        f"{'rack':<9}{'boot':>5}{'procs':>6}{'p50 ms':>8}{'p95 ms':>8}{'floor ms':>10}"
        f"{'overhead p50':>14}{'overhead p95':>14}{'CLI p50 ms':>12}{'failed':>8}"
    )
    for r in rows:
        print(
            f"{r['rack']:<9}{r['boot_ms']:>5}{r['processes']:>6}{r['p50_s'] * 1e3:>8.0f}"
            f"{r['p95_s'] * 1e3:>8.0f}{r['floor_s'] * 1e3:>10.0f}"
            f"{r['overhead_p50_s'] * 1e3:>14.0f}{r['overhead_p95_s'] * 1e3:>14.0f}"
            f"{r['cli_p50_s'] * 1e3:>12.0f}{r['failed_requests']:>8}"
        )
    path = harness.write_result("rollback", result)
    total = sum(r["rollbacks"] for r in rows)
    print(f"\n{total} rollbacks in {result['seconds']:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
