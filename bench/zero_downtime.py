#!/usr/bin/env python3
"""Zero-downtime benchmark: load through the router (wrk, 32 connections, 60 s) while the app
is rolled back again and again, and the same load with no rollback as the baseline.

    python bench/zero_downtime.py                  # ~2.5 minutes; table + bench/results/
    python bench/zero_downtime.py --duration 10

A failed request is anything but a 2xx answer (wrk counts the statuses through a Lua script)
and every socket error or timeout wrk reports. Rollbacks run back to back from the CLI, one
after the other, alternating between two releases of the example app, for as long as the
load lasts. wrk is a C load generator with its own event loop: the client is not what limits
the figures. Needs `wrk` (Debian: `apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import harness

# Counts the answers per status and says which release answered how often (from the JSON
# body), printed as one line per thread after wrk's own report.
LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} releases = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local release = body and string.match(body, '"release": "(%w+)"')
  if release then releases[release] = (releases[release] or 0) + 1 end
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, n in pairs(s) do io.write("STATUS ", status, " ", n, "\n") end
    local r = thread:get("releases")
    for release, n in pairs(r) do io.write("RELEASE ", release, " ", n, "\n") end
  end
end
"""

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert match is not None, text
    return float(match.group(1)) * UNITS[match.group(2)]


def parse(out: str) -> dict[str, Any]:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, out, re.M)
        if match is None:
            raise SystemExit(f"ERROR: unexpected wrk output:\n{out}")
        return match

    statuses: dict[str, int] = {}
    for status, n in re.findall(r"^STATUS (\d+) (\d+)$", out, re.M):
        statuses[status] = statuses.get(status, 0) + int(n)
    releases: dict[str, int] = {}
    for release, n in re.findall(r"^RELEASE (\w+) (\d+)$", out, re.M):
        releases[release] = releases.get(release, 0) + int(n)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = dict(
        zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True)
        if sock
        else {}
    )
    non_2xx = sum(n for status, n in statuses.items() if not status.startswith("2"))
    return {
        "requests": int(find(r"(\d+) requests in").group(1)),
        "rps": float(find(r"Requests/sec:\s+([\d.]+)").group(1)),
        "p50_ms": _ms(find(r"^\s+50%\s+(\S+)").group(1)),
        "p99_ms": _ms(find(r"^\s+99%\s+(\S+)").group(1)),
        "max_ms": _ms(find(r"Latency\s+\S+\s+\S+\s+(\S+)").group(1)),
        "statuses": statuses,
        "socket_errors": socket_errors,
        "failed": non_2xx + sum(socket_errors.values()),
        "releases_answering": len(releases),
    }


def load(
    rack: harness.Rack, app: str, duration: float, script: Path, connections: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(script),
            "-H",
            f"Host: web.{app}.localhost",
            rack.router + "/",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(wrk: subprocess.Popen[str], duration: float) -> dict[str, Any]:
    out, _ = wrk.communicate(timeout=duration + 60)
    if wrk.returncode:
        raise SystemExit(f"ERROR: wrk failed: {out.strip()}")
    return parse(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load, each")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--count", type=int, default=2, help="processes of the app")
    parser.add_argument("--boot", type=int, default=0, metavar="MS", help="the app's boot delay")
    parser.add_argument("--label", default="", help="stored in the JSON (e.g. before/after)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("ERROR: wrk is not installed: apt-get install wrk")

    began = time.monotonic()
    result: dict[str, Any] = {
        "benchmark": "zero_downtime",
        "started": harness.started_now(),
        "command": " ".join(["python bench/zero_downtime.py", *sys.argv[1:]]),
        "label": args.label,
        "machine": harness.machine(),
        "parameters": {
            "duration_s": args.duration,
            "connections": args.connections,
            "processes": args.count,
            "boot_ms": args.boot,
            "load_generator": "wrk -t1, keep-alive",
        },
    }
    with (
        tempfile.TemporaryDirectory(prefix="shipmate-bench-zd-") as tmp,
        harness.rack("zero-downtime") as rack,
    ):
        script = Path(tmp) / "count.lua"
        script.write_text(LUA)
        app = "zd"
        source = harness.app_copy(Path(tmp), app, args.count)
        rack.run("apps", "create", app)
        rack.run("deploy", str(source), "-a", app)
        rack.run("env", "set", f"BOOT_DELAY_MS={args.boot}", "--promote", "-a", app)
        first = rack.active(app)
        rack.run("env", "set", "FLIP=1", "--promote", "-a", app)
        second = rack.active(app)

        print(f"baseline: {args.duration:g} s of load, no rollback", flush=True)
        baseline = finish(load(rack, app, args.duration, script, args.connections), args.duration)

        print(f"rollbacks: {args.duration:g} s of load, rollbacks back to back", flush=True)
        wrk = load(rack, app, args.duration, script, args.connections)
        end = time.monotonic() + args.duration
        times: list[float] = []
        errors: list[str] = []

        def roll() -> None:
            # Stop starting rollbacks shortly before the load ends, so the last one is
            # entirely under load.
            i = 0
            while time.monotonic() < end - 3:
                start = time.monotonic()
                done = rack.run(
                    "releases", "rollback", (first, second)[i % 2], "-a", app, check=False
                )
                if done.returncode:
                    errors.append(done.stderr.strip())
                    return
                times.append(time.monotonic() - start)
                i += 1

        roller = threading.Thread(target=roll)
        roller.start()
        during = finish(wrk, args.duration)
        roller.join()
        if errors:
            raise SystemExit(f"ERROR: a rollback failed under load: {errors[0]}")
        during["rollbacks"] = len(times)
        during["rollback_cli_p50_s"] = harness.percentile(times, 50) if times else None

    result["baseline"] = baseline
    result["rollbacks"] = during
    result["seconds"] = time.monotonic() - began

    print()
    print(
        f"{'':<22}{'requests':>10}{'req/s':>9}{'failed':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'rollbacks':>11}"
    )
    for name, r in (("no rollback", baseline), ("rollbacks back to back", during)):
        print(
            f"{name:<22}{r['requests']:>10}{r['rps']:>9.0f}{r['failed']:>8}{r['p50_ms']:>9.1f}"
            f"{r['p99_ms']:>9.1f}{r['max_ms']:>9.0f}{r.get('rollbacks', 0):>11}"
        )
    print(
        f"statuses during rollbacks: {during['statuses']}; socket errors: "
        f"{during['socket_errors'] or 'none'}; releases that answered: "
        f"{during['releases_answering']}"
    )
    path = harness.write_result("zero_downtime", result)
    print(f"\nfinished in {result['seconds']:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
