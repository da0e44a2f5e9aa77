"""Acceptance: the router drops nothing while a 2-process service is rolled back and forth.

A bounded load (kept-alive connections; GETs, small POSTs the router buffers and large POSTs
it streams) runs through the router while the test performs ten rollbacks between two
releases. Every request must succeed, and every request that started after a rollback
command returned must be answered by that rollback's release (the copy it created).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import yaml

from tests.integration.conftest import (
    EXAMPLE,
    reachable_home,
    remove_apps,
    remove_home,
    start_rack,
    stop_rack,
)
from tests.integration.load import Load

DURATION = 30.0  # seconds of load, at least
CONCURRENCY = 16
ROLLBACKS = 10


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

        load = Load(rack.info["router"], "web.zd.localhost", CONCURRENCY)
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
