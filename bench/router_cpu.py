#!/usr/bin/env python3
"""Router CPU time per request, this checkout against another: a before-and-after comparison
that a busy machine disturbs less than requests/s do.

    python bench/router_cpu.py --against DIR              # ~2 minutes
    python bench/router_cpu.py --against DIR --rounds 20 --duration 4

Each router runs as its daemon with one process (`--workers 1`), in front of the same
backend as bench/router.py (HAProxy answering a small JSON body). Rounds alternate which
router goes first; in each, wrk loads one router for `--duration` seconds and the router's
CPU time (user + system, from /proc/PID/stat) is divided by the requests wrk completed. The
router is the bottleneck, so CPU time per request is what bounds its requests/s; other
work on the machine slows both routers alike from one round to the next, and the median
of the per-round ratios is reported.

Needs `wrk` and `haproxy`, as bench/router.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import router as bench  # bench/router.py, beside this file

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    # Fields 14 and 15 of /proc/PID/stat (after the parenthesised command): utime, stime.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, required=True, metavar="DIR")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--pause", type=float, default=0.5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--post", action="store_true", help="POST 1 KiB instead of GET")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="shipmate-cpu-") as tmp, bench.processes() as procs:
        workdir = Path(tmp)
        script = None
        if args.post:
            script = workdir / "post.lua"
            script.write_text(
                'wrk.method = "POST"\n'
                f'wrk.body = string.rep("x", {bench.POST_BYTES})\n'
                'wrk.headers["Content-Type"] = "application/octet-stream"\n'
            )
        backend = bench.free_port()
        procs.append(bench.haproxy(workdir, "backend", bench.backend_config(backend)))
        targets: dict[str, tuple[int, int]] = {}
        for name, checkout in (("after", bench.ROOT), ("before", args.against)):
            port = bench.free_port()
            proc, _ = bench.start_router(workdir, name, port, backend, 1, checkout)
            procs.append(proc)
            bench.wait_port(port)
            targets[name] = (proc.pid, port)
        for _pid, port in targets.values():
            bench.wrk(f"http://127.0.0.1:{port}/", args, 2.0, script)
        per_request: dict[str, list[float]] = {name: [] for name in targets}
        for round_ in range(args.rounds):
            order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
            for name in order:
                pid, port = targets[name]
                before = cpu_seconds(pid)
                out = bench.wrk(f"http://127.0.0.1:{port}/", args, args.duration, script)
                used = cpu_seconds(pid) - before
                figures = bench.parse_wrk(out)
                us = used / figures["requests"] * 1e6
                per_request[name].append(us)
                print(
                    f"  round {round_ + 1}/{args.rounds} {name:<6} {figures['rps']:>9,.0f} req/s"
                    f"  {us:6.1f} us CPU/request",
                    flush=True,
                )
                time.sleep(args.pause)
    ratios = [a / b for a, b in zip(per_request["after"], per_request["before"], strict=True)]
    print()
    for name, values in per_request.items():
        print(f"{name:<7} median {statistics.median(values):.1f} us CPU/request")
    print(
        "after/before CPU per request: rounds "
        + " ".join(f"{r:.3f}" for r in ratios)
        + f"; median {statistics.median(ratios):.3f}"
    )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
