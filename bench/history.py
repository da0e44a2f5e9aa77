#!/usr/bin/env python3
"""Release-history benchmark: an app with 100,000 releases, on SQLite and on PostgreSQL.

    python bench/history.py                      # both backends, ~2 minutes; table + JSON
    python bench/history.py --releases 10000 --backends sqlite --repeat 3

For each backend: a real rack in a temporary SHIPMATE_HOME (SQLite: its default database
file; PostgreSQL: a throwaway server started here with its durable defaults, fsync on),
`deploy examples/hello` (the oldest release), then N-1 more releases inserted through the
store layer in bulk (store.bulk.insert_releases, encrypted like any release), and the same
timings against an app with 10 releases for comparison. Timed through the real CLI
(wall time of the `shipmate` process, start-up included) and through the API alone:

- `shipmate releases`              (the newest 20)
- `shipmate releases info OLDEST`  (a release at the far end of the history)
- `shipmate releases rollback OLDEST` (copies it and promotes the copy: the CLI returns once
  the copy serves; the API figure is the POST alone: checks, copy and promotion written)

Each figure is the median of --repeat runs. PostgreSQL comes from Debian's `postgresql`
package (the test suite's throwaway server, tests/postgres.py), or --postgres-url.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import harness
import httpx

sys.path.insert(0, str(harness.ROOT))  # the shipmate package and tests/postgres.py

from shipmate.bootstrap import open_store
from shipmate.config import Settings
from shipmate.store.bulk import NewRelease, insert_releases
from tests import postgres

BIG, SMALL = "history", "small"
CHUNK = 10_000  # releases per transaction of the bulk insert


@contextlib.contextmanager
def database(backend: str, home: Path, postgres_url: str | None) -> Iterator[str | None]:
    """The rack's database URL (None: SQLite's default file in SHIPMATE_HOME)."""
    if backend == "sqlite":
        yield None
        return
    if postgres_url:
        os.environ[postgres.EXTERNAL_ENV] = postgres_url
    server = postgres.start(durable=True)
    url = server.create_database("bench")
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            server.drop_database(url)
        server.stop()


@contextlib.contextmanager
def rack(home: Path, url: str | None) -> Iterator[harness.Rack]:
    env = harness.base_env()
    env["SHIPMATE_HOME"] = str(home)
    if url:
        env["SHIPMATE_DATABASE_URL"] = url
    r = harness.Rack(home, env)
    r.run("rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0")
    r.info = json.loads((home / "rack.json").read_text())
    try:
        yield r
    finally:
        r.run("rack", "stop", "--all", check=False, timeout=120)


def settings_of(r: harness.Rack) -> Settings:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(r.env)
        return Settings.from_env()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def grow(r: harness.Rack, app: str, total: int) -> float:
    """Add releases until `app` has `total`, through the store layer; returns the seconds."""
    settings = settings_of(r)
    store = open_store(settings)  # the rack's key: the rack must read what we write
    started = time.perf_counter()
    try:
        with store.unit_of_work() as uow:
            latest = uow.releases.latest(app)
            assert latest is not None
            have = latest.number
        n = have
        while n < total:
            count = min(CHUNK, total - n)
            with store.unit_of_work() as uow:
                uow.apps.lock(app)
                insert_releases(
                    uow,
                    app,
                    [
                        NewRelease(
                            latest.build_id,
                            {**latest.env, "N": str(n + i)},
                            latest.manifest,
                            latest.manifest_name,
                            "env add:N" if n + i == have else "env change:N",
                        )
                        for i in range(count)
                    ],
                )
            n += count
    finally:
        store.close()
    return time.perf_counter() - started


def timed(
    fn: Callable[[], object], repeat: int, between: Callable[[], object] | None = None
) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
        if between is not None:
            between()
    return statistics.median(runs)


def measure(r: harness.Rack, app: str, oldest: str, repeat: int) -> dict[str, float]:
    token = (r.home / "token").read_text().strip()
    api = httpx.Client(
        base_url=r.info["api"], headers={"Authorization": f"Bearer {token}"}, timeout=300
    )

    def ok(done: httpx.Response) -> httpx.Response:
        if done.status_code >= 400:
            raise SystemExit(f"ERROR: {done.request.url}: {done.text}")
        return done

    def settled() -> None:
        # Between rollbacks: the promotion is over and the old process has stopped.
        deadline = time.monotonic() + 120
        while ok(api.get(f"/apps/{app}")).json()["status"] != "running":
            if time.monotonic() > deadline:
                raise SystemExit(f"ERROR: app {app} did not settle")
            time.sleep(0.05)
        time.sleep(0.3)

    newest = ok(api.get(f"/apps/{app}/releases", params={"limit": 1})).json()[0]
    result = {
        "releases": newest["number"],
        "cli_releases": timed(lambda: r.run("releases", "-a", app), repeat),
        "api_releases": timed(lambda: ok(api.get(f"/apps/{app}/releases")), repeat),
        "cli_info_oldest": timed(lambda: r.run("releases", "info", oldest, "-a", app), repeat),
        "api_info_oldest": timed(lambda: ok(api.get(f"/apps/{app}/releases/{oldest}")), repeat),
        "cli_rollback_oldest": timed(
            lambda: r.run("releases", "rollback", oldest, "-a", app), repeat, settled
        ),
        "api_rollback_oldest": timed(
            lambda: ok(api.post(f"/apps/{app}/releases/{oldest}/rollback", json={})),
            repeat,
            settled,
        ),
    }
    api.close()
    return result


def run_backend(backend: str, n: int, repeat: int, postgres_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"shipmate-bench-history-{backend}-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        with database(backend, home, postgres_url) as url, rack(home, url) as r:
            oldest = {}
            for app in (BIG, SMALL):
                r.run("apps", "create", app)
                out = r.run("deploy", str(harness.EXAMPLE), "-a", app).stdout
                oldest[app] = re.search(r"^Release: (R[A-Z]{9})$", out, re.M).group(1)  # type: ignore[union-attr]
            print(f"[{backend}] inserting {n - 1} releases...", flush=True)
            insert_s = grow(r, BIG, n)
            grow(r, SMALL, 10)
            print(f"[{backend}] inserted in {insert_s:.1f}s; timing...", flush=True)
            return {
                "backend": backend,
                "insert_seconds": round(insert_s, 2),
                "big": measure(r, BIG, oldest[BIG], repeat),
                "small": measure(r, SMALL, oldest[SMALL], repeat),
            }


ROWS = [
    ("releases (CLI)", "cli_releases"),
    ("releases (API)", "api_releases"),
    ("releases info OLDEST (CLI)", "cli_info_oldest"),
    ("releases info OLDEST (API)", "api_info_oldest"),
    ("releases rollback OLDEST (CLI, until served)", "cli_rollback_oldest"),
    ("releases rollback OLDEST (API POST)", "api_rollback_oldest"),
]


def table(results: list[dict[str, Any]]) -> str:
    head = ["", *(f"{x['backend']} {x['big']['releases']:,}" for x in results)]
    head += [f"{x['backend']} {x['small']['releases']}" for x in results]
    rows = [head]
    for label, key in ROWS:
        row = [label]
        row += [f"{x['big'][key] * 1000:.0f} ms" for x in results]
        row += [f"{x['small'][key] * 1000:.0f} ms" for x in results]
        rows.append(row)
    rows.append(
        ["bulk insert", *(f"{x['insert_seconds']:.1f} s" for x in results), *["" for _ in results]]
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--releases", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=None, help="a PostgreSQL superuser URL to use")
    args = parser.parse_args()
    started = harness.started_now()
    machine = harness.machine()
    results = [
        run_backend(b.strip(), args.releases, args.repeat, args.postgres_url)
        for b in args.backends.split(",")
    ]
    print(table(results))
    path = harness.write_result(
        "history",
        {
            "started": started,
            "machine": machine,
            "command": " ".join(["python", "bench/history.py", *sys.argv[1:]]),
            "repeat": args.repeat,
            "results": results,
        },
    )
    print(f"wrote {path.relative_to(harness.ROOT)}")


if __name__ == "__main__":
    main()
