"""Acceptance (issue 13, points 2 and 3): watched promotions and canaries under load.

A steady load runs through the real router against the example app (two processes) while
the real CLI promotes: a release that answers 500 to half its requests (its health check
still passing) is rolled back by the rack itself within its watch, a good one is left alone,
and a canary takes its share of requests, then completes or is aborted, with every request
of the test accounted for.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from shipmate.common.waiting import poll_until
from tests.integration.conftest import EXAMPLE, Rack, own_rack
from tests.integration.load import Load, Outcome

CONCURRENCY = 8
RELEASE_RE = re.compile(r"^Release: (R[A-Z]{9})$", re.M)


@pytest.fixture(scope="module")
def rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rack]:
    with own_rack(tmp_path_factory, "watch") as rack:
        yield rack


def app_source(where: Path, name: str, watch: dict[str, int] | None) -> Path:
    source = where / name
    shutil.copytree(EXAMPLE, source)
    manifest = yaml.safe_load((source / "shipmate.yml").read_text())
    web = manifest["services"]["web"]
    web["scale"] = {"count": 2}
    web["termination"] = {"grace": 5}
    if watch is not None:
        web["deployment"] = {"watch": watch}
    (source / "shipmate.yml").write_text(yaml.safe_dump(manifest))
    return source


def first_release(rack: Rack, app: str, source: Path) -> str:
    rack.ok("apps", "create", app)
    out = rack.ok("deploy", str(source), "-a", app, "--no-watch")
    return RELEASE_RE.search(out).group(1)  # type: ignore[union-attr]


def unexpected(outcomes: list[Outcome], bad: str | None = None) -> list[Outcome]:
    """Requests that failed, other than the 500s the bad release answers on purpose."""
    return [
        o for o in outcomes if o.problem is not None and not (o.status == 500 and o.release == bad)
    ]


def test_a_release_answering_500s_is_rolled_back_by_itself(rack: Rack, tmp_path: Path) -> None:
    app = "watched"
    watch = {"duration": 30, "errors": 5, "requests": 20}
    r1 = first_release(rack, app, app_source(tmp_path, app, watch))
    load = Load(rack.info["router"], f"web.{app}.localhost", CONCURRENCY)
    try:
        time.sleep(2)  # r1's own window: it answers everything
        out = rack.ok("env", "set", "FAIL_PERCENT=50", "--promote", "-a", app)
        r2 = RELEASE_RE.search(out).group(1)  # type: ignore[union-attr]
        promoted = time.monotonic()

        def rolled_back() -> dict[str, object] | None:
            latest = rack.releases(app)[0]
            return latest if latest["copied_from"] == r1 and latest["active"] else None

        copy = poll_until(rolled_back, watch["duration"], interval=0.5, what="auto-rollback")
        rolled = time.monotonic()
        poll_until(lambda: rack.get(app).json()["release"] == copy["id"], 30, what="copy serving")
        time.sleep(2)
    finally:
        outcomes = load.stop()

    by = Counter(o.release for o in outcomes)
    print(
        f"\n{len(outcomes)} requests: {dict(by)}; {sum(o.status == 500 for o in outcomes)} "
        f"500s from {r2}; rolled back {rolled - promoted:.1f} s after the promotion returned; "
        f"{copy['description']}"
    )
    assert rolled - promoted < watch["duration"]
    assert re.fullmatch(
        rf"auto-rollback: 5xx \d+% > 5% in \d+ s \({r2}\)", str(copy["description"])
    )
    info = rack.ok("releases", "info", r2, "-a", app)
    assert "watch failed: 5xx" in info and f"rolled back by {copy['id']}" in info
    history = rack.ok("releases", "history", "-a", app).splitlines()
    assert re.search(rf"{copy['id']}\s+auto-rollback\s+rack\s", history[1]), history[:2]
    assert any(
        "auto-rollback" in line and "rack" in line
        for line in rack.ok("audit", "-a", app).splitlines()
    )

    # Every request accounted for: answered by r1, r2 or the copy; the only failures are the
    # 500s r2 answers on purpose, and none once the copy serves.
    assert not unexpected(outcomes, bad=r2), unexpected(outcomes, bad=r2)[:3]
    assert set(by) == {r1, r2, copy["id"]} and by[copy["id"]] > 20, by
    assert any(o.status == 500 for o in outcomes)
    late = [o for o in outcomes if o.started > rolled + 1]
    assert late and all(o.release == copy["id"] and o.status == 200 for o in late)


def test_a_good_release_under_the_same_watch_is_left_alone(rack: Rack, tmp_path: Path) -> None:
    app = "kept"
    watch = {"duration": 6, "errors": 5, "requests": 20}
    first_release(rack, app, app_source(tmp_path, app, watch))
    load = Load(rack.info["router"], f"web.{app}.localhost", CONCURRENCY)
    try:
        time.sleep(1)
        out = rack.ok("env", "set", "FOO=fine", "--promote", "-a", app)
        r2 = RELEASE_RE.search(out).group(1)  # type: ignore[union-attr]
        watching = rack.ok("apps", "watch", "-a", app)
    finally:
        outcomes = load.stop()
    assert re.search(rf"^{r2}: \d+ s of 6 s, \d+ requests, 5xx 0%.*: passed$", watching, re.M)
    assert rack.releases(app)[0]["id"] == r2 and rack.releases(app)[0]["active"]
    print(f"\n{len(outcomes)} requests, {len(unexpected(outcomes))} failed; {watching.strip()}")
    assert not unexpected(outcomes), unexpected(outcomes)[:3]
    assert len(outcomes) > 100


def test_a_canary_takes_its_share_then_completes_or_aborts(rack: Rack, tmp_path: Path) -> None:
    app = "canaried"
    r1 = first_release(rack, app, app_source(tmp_path, app, None))
    load = Load(rack.info["router"], f"web.{app}.localhost", CONCURRENCY)
    try:
        rack.ok("env", "set", "FOO=two", "-a", app)
        out = rack.ok("releases", "promote", "--canary", "10", "-a", app)
        assert "OK, canary: " in out and "serves 10% of requests" in out
        r2 = rack.releases(app)[0]["id"]
        began = time.monotonic()
        time.sleep(8)
        measured = time.monotonic()
        out = rack.ok("releases", "promote", "--continue", "-a", app)
        assert out.splitlines()[-1] == "OK"
        continued = time.monotonic()
        time.sleep(1)

        rack.ok("env", "set", "FOO=three", "-a", app)
        rack.ok("releases", "promote", "--canary", "10", "-a", app)
        r3 = rack.releases(app)[0]["id"]
        time.sleep(2)
        out = rack.ok("releases", "promote", "--abort", "-a", app)
        assert out.splitlines()[-1] == f"OK, canary aborted: {r2} is active"
        aborted = time.monotonic()
        time.sleep(1.5)
    finally:
        outcomes = load.stop()

    assert not unexpected(outcomes), unexpected(outcomes)[:3]
    share = [o for o in outcomes if began + 0.5 < o.started < measured]
    new = sum(o.release == r2 for o in share)
    assert all(o.release in (r1, r2) for o in share)
    print(
        f"\n{len(outcomes)} requests, {len(unexpected(outcomes))} failed; canary share "
        f"{new}/{len(share)} = {100 * new / len(share):.1f}%"
    )
    assert 0.07 <= new / len(share) <= 0.13, (new, len(share))
    after = [o for o in outcomes if continued < o.started < continued + 1]
    assert after and all(o.release == r2 for o in after)
    late = [o for o in outcomes if o.started > aborted]
    assert late and all(o.release == r2 for o in late)
    assert any(o.release == r3 for o in outcomes)
    assert rack.releases(app)[1]["id"] == r2 and rack.releases(app)[1]["active"]
