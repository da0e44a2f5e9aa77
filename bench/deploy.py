#!/usr/bin/env python3
"""Deploy benchmark: a full `shipmate deploy` split into upload, build, release and promotion;
and rollbacks of an app whose build takes 30 s, next to those of an app that builds in a few
seconds, to show that a rollback never pays for a build.

    python bench/deploy.py                         # ~2 minutes; table + bench/results/
    python bench/deploy.py --deploys 1 --build-seconds 5

The small app is the example app with one dependency from PyPI (`six`, in requirements.txt):
a build creates a virtualenv and pip-installs it (pip's own cache makes repeated downloads
local). The slow app's requirements.txt names a local package whose build backend sleeps
30 s before it writes its wheel, and downloads nothing.

Phases of a deploy, from the CLI's output lines, timestamped as they arrive:
- upload: invoking `deploy` to `Starting build` (CLI start-up, packing, upload, build row);
- build: to `Build: ...` (virtualenv, pip install, the release row at the end);
- release: to the promotion's first event (`Running => Pending`: the promote request);
- promotion: to the moment every answer through the router comes from the new release.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import harness

BACKEND = '''"""A PEP 517 build backend that takes its time: a stand-in for a slow build."""

import base64
import hashlib
import os
import time
import zipfile

NAME, VERSION = "slowpkg", "0.1"
DIST = f"{NAME}-{VERSION}.dist-info"
FILES = {
    f"{NAME}/__init__.py": b"",
    f"{DIST}/METADATA": f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n".encode(),
    f"{DIST}/WHEEL": (
        b"Wheel-Version: 1.0\\nGenerator: slow\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    ),
}


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    time.sleep(float(os.environ.get("SLOW_BUILD_SECONDS", "@SECONDS@")))
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, data in FILES.items():
            wheel.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
        record.append(f"{DIST}/RECORD,,")
        wheel.writestr(f"{DIST}/RECORD", "\\n".join(record) + "\\n")
    return name
'''

PYPROJECT = """[build-system]
requires = []
build-backend = "slow_backend"
backend-path = ["."]

[project]
name = "slowpkg"
version = "0.1"
"""


def small_app(workdir: Path) -> Path:
    source = harness.app_copy(workdir, "small")
    (source / "requirements.txt").write_text("six\n")
    return source


def slow_app(workdir: Path, seconds: float) -> Path:
    source = harness.app_copy(workdir, "slow")
    package = source / "slowpkg"
    package.mkdir()
    (package / "pyproject.toml").write_text(PYPROJECT)
    (package / "slow_backend.py").write_text(BACKEND.replace("@SECONDS@", f"{seconds:g}"))
    (source / "requirements.txt").write_text("./slowpkg\n")
    return source


def timed_deploy(
    rack: harness.Rack, app: str, source: Path, watcher: harness.Watcher
) -> dict[str, Any]:
    """One `deploy`, its phases from the times its output lines arrived."""
    marks: dict[str, float] = {}
    release = ""
    start = time.monotonic()
    served = any(r != "!" for _, r in watcher.samples)
    proc = subprocess.Popen(
        [*harness.cli(), "deploy", str(source), "-a", app],
        env=rack.env,
        cwd=rack.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None
    output = []
    for line in proc.stdout:
        now = time.monotonic()
        output.append(line)
        if line.startswith("Starting build"):
            marks.setdefault("uploaded", now)
        elif line.startswith("Build:"):
            marks.setdefault("built", now)
        elif line.startswith("Release:"):
            release = line.split()[1]
        elif "Running => Pending" in line:
            marks.setdefault("promotion_started", now)
    if proc.wait() != 0 or len(marks) != 3 or not release:
        raise SystemExit(f"ERROR: `shipmate deploy` failed:\n{''.join(output)}")
    cli_done = time.monotonic()
    watcher.wait_for(release, after=start)
    switched = watcher.switched_at(release, after=start)
    assert switched is not None
    return {
        "release": release,
        "upload_s": marks["uploaded"] - start,
        "build_s": marks["built"] - marks["uploaded"],
        "release_s": marks["promotion_started"] - marks["built"],
        "promotion_s": switched - marks["promotion_started"],
        "total_s": switched - start,
        "cli_s": cli_done - start,
        # Before the app's first deploy the router has no route for it: those are not failures.
        "failed_requests": watcher.errors(after=start) if served else None,
    }


def build_seconds(rack: harness.Rack, app: str) -> float:
    """How long the app's latest build took, as the rack recorded it."""
    latest = json.loads(rack.run("builds", "-a", app, "--json").stdout)[0]
    started = datetime.fromisoformat(latest["started"])
    return (datetime.fromisoformat(latest["ended"]) - started).total_seconds()


def rollbacks(rack: harness.Rack, app: str, n: int) -> list[dict[str, Any]]:
    """`n` rollbacks between two releases of the app's current build."""
    first = rack.active(app)
    rack.run("env", "set", "FLIP=1", "--promote", "-a", app)
    second = rack.active(app)
    runs = []
    with harness.Watcher(rack.router, app) as watcher:
        for i in range(n):
            runs.append(harness.rollback_once(rack, app, (first, second)[i % 2], watcher))
            time.sleep(0.3)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deploys", type=int, default=3, help="full deploys of the small app")
    parser.add_argument("--rollbacks", type=int, default=5, help="per app")
    parser.add_argument("--build-seconds", type=float, default=30.0, help="the slow build")
    parser.add_argument("--label", default="", help="stored in the JSON (e.g. before/after)")
    args = parser.parse_args()

    began = time.monotonic()
    result: dict[str, Any] = {
        "benchmark": "deploy",
        "started": harness.started_now(),
        "command": " ".join(["python bench/deploy.py", *sys.argv[1:]]),
        "label": args.label,
        "machine": harness.machine(),
        "parameters": {
            "deploys": args.deploys,
            "rollbacks": args.rollbacks,
            "slow_build_seconds": args.build_seconds,
            "dependency": "six (PyPI)",
        },
    }
    with (
        tempfile.TemporaryDirectory(prefix="shipmate-bench-deploy-") as tmp,
        harness.rack("deploy") as rack,
    ):
        small = small_app(Path(tmp))
        slow = slow_app(Path(tmp), args.build_seconds)
        rack.run("apps", "create", "small")
        rack.run("apps", "create", "slow")
        deploys = []
        with harness.Watcher(rack.router, "small") as watcher:
            for i in range(args.deploys):
                deploys.append(timed_deploy(rack, "small", small, watcher))
                d = deploys[-1]
                print(
                    f"  deploy {i + 1}/{args.deploys}: upload {d['upload_s']:.2f} s, build "
                    f"{d['build_s']:.2f} s, release {d['release_s']:.2f} s, promotion "
                    f"{d['promotion_s']:.2f} s",
                    flush=True,
                )
        print(f"  deploying the slow app ({args.build_seconds:g} s build)...", flush=True)
        rack.run("deploy", str(slow), "-a", "slow", timeout=args.build_seconds + 300)
        slow_build = build_seconds(rack, "slow")
        small_build = build_seconds(rack, "small")
        rolls = {"small": rollbacks(rack, "small", args.rollbacks)}
        rolls["slow"] = rollbacks(rack, "slow", args.rollbacks)

    phases = ("upload_s", "build_s", "release_s", "promotion_s", "total_s")
    result["deploys"] = deploys
    result["deploy_median"] = {p: harness.median([d[p] for d in deploys]) for p in phases}
    result["rollbacks"] = {
        app: {
            "build_s": build,
            "p50_s": harness.percentile([r["seconds"] for r in runs], 50),
            "p95_s": harness.percentile([r["seconds"] for r in runs], 95),
            "failed_requests": sum(r["failed_requests"] for r in runs),
            "runs": runs,
        }
        for app, build, runs in (
            ("small", small_build, rolls["small"]),
            ("slow", slow_build, rolls["slow"]),
        )
    }
    result["seconds"] = time.monotonic() - began

    m = result["deploy_median"]
    print()
    print(f"full deploy of the small app (median of {args.deploys}):")
    failed = sum(d["failed_requests"] or 0 for d in deploys)
    print(f"{'upload':>10}{'build':>10}{'release':>10}{'promotion':>11}{'total':>10}{'failed':>8}")
    print(
        f"{m['upload_s']:>9.2f}s{m['build_s']:>9.2f}s{m['release_s']:>9.2f}s"
        f"{m['promotion_s']:>10.2f}s{m['total_s']:>9.2f}s{failed:>8}"
    )
    print()
    print(f"{'rollback of':<14}{'build took':>12}{'p50 ms':>9}{'p95 ms':>9}{'failed':>8}")
    for app, r in result["rollbacks"].items():
        print(
            f"{app + ' app':<14}{r['build_s']:>11.1f}s{r['p50_s'] * 1e3:>9.0f}"
            f"{r['p95_s'] * 1e3:>9.0f}{r['failed_requests']:>8}"
        )
    path = harness.write_result("deploy", result)
    print(f"\nfinished in {result['seconds']:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
