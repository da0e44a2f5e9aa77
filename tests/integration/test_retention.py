"""Issue 14, point 2: retention that can never break a rollback (keep, pins, prune)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.integration.conftest import EXAMPLE, Rack

pytestmark = pytest.mark.integration

APP = "keeper"


def du(paths: list[object]) -> int:
    """What `du -s -B1` says the directories use, in bytes."""
    out = subprocess.run(
        ["du", "-s", "-B1", "-c", *map(str, paths)], capture_output=True, text=True, check=True
    ).stdout
    return int(out.splitlines()[-1].split()[0])


def test_prune_keeps_what_a_rollback_needs_and_frees_the_rest(rack: Rack) -> None:
    rack.ok("apps", "create", APP)
    out = rack.ok("builds", "prune", "-a", APP)
    assert out == f"Nothing to prune: {APP} keeps every build (`shipmate apps settings --keep N`)\n"
    for _ in range(20):
        rack.ok("deploy", str(EXAMPLE), "-a", APP)
    listed = rack.releases(APP)  # newest first: R20 ... R1
    assert len(listed) == 20 and len({r["build"] for r in listed}) == 20
    by_number = {20 - i: r for i, r in enumerate(listed)}
    assert rack.ok("apps", "settings", "--keep", "3", "-a", APP) == "Keep  3 releases\n"
    pinned = str(by_number[2]["id"])
    assert rack.ok("releases", "pin", pinned, "-a", APP) == (
        f"Pinned {pinned}: its build is never pruned\n"
    )
    assert '"pinned": true' in rack.ok("releases", "info", pinned, "-a", APP, "--json")

    # Kept: the 3 newest (R20, active; R19, previous; R18) and the pinned R2.
    doomed = [by_number[n] for n in [1, *range(3, 18)]]
    builds = rack.home / "builds"
    expected = du([builds / str(r["build"]) for r in doomed])
    plan = json.loads(rack.ok("builds", "prune", "--dry-run", "--json", "-a", APP))
    assert sorted(b["build"] for b in plan["builds"]) == sorted(str(r["build"]) for r in doomed)
    assert plan["freed"] == expected
    assert all((builds / str(r["build"])).is_dir() for r in listed)  # a dry run changes nothing
    out = rack.ok("builds", "prune", "--dry-run", "-a", APP)
    assert re.search(r"^Would free \d+(\.\d)? [KMG]?B \(16 builds\)$", out, re.M), out

    out = rack.ok("builds", "prune", "-a", APP)
    assert re.search(r"^Freed \d+(\.\d)? [KMG]?B \(16 builds\)$", out, re.M), out
    for number, release in by_number.items():
        assert (builds / str(release["build"])).is_dir() == (number in (2, 18, 19, 20)), number
    assert len(rack.releases(APP)) == 20  # releases stay, as rows
    assert json.loads(rack.ok("builds", "prune", "--json", "-a", APP))["builds"] == []

    # The pinned release rolls back; one whose build went is refused before anything changes.
    out = rack.ok("releases", "rollback", pinned, "-a", APP)
    assert out.rstrip().splitlines()[-1].startswith("OK, R")
    before = rack.releases(APP)
    gone = by_number[5]
    result = rack.run("releases", "rollback", str(gone["id"]), "-a", APP)
    assert (result.code, result.err) == (
        1,
        f"ERROR: the build {gone['build']} of {gone['id']} was pruned (`shipmate builds prune`): "
        "deploy its source again; `shipmate releases pin` keeps a release's build\n",
    )
    assert rack.releases(APP) == before
    assert rack.get(APP).json()["build"] == by_number[2]["build"]
    result = rack.run("releases", "promote", str(gone["id"]), "-a", APP)
    assert result.code == 1 and "was pruned" in result.err
    assert rack.ok("releases", "unpin", pinned, "-a", APP) == f"Unpinned {pinned}\n"
    assert rack.ok("apps", "settings", "--keep", "all", "-a", APP) == "Keep  all\n"
    result = rack.run("apps", "settings", "--keep", "0", "-a", APP)
    assert (result.code, result.err) == (1, "ERROR: --keep takes 1 to 100000 releases, or `all`\n")
