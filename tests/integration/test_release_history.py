"""Issue 14: `shipmate releases history`, every promotion newest first, with what it was."""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.conftest import Rack

pytestmark = pytest.mark.integration


def test_history_lists_every_promotion_with_its_action_and_outcome(rack: Rack) -> None:
    rack.deploy("hist")
    first = rack.releases("hist")[0]["id"]
    rack.ok("env", "set", "FOO=1", "--promote", "-a", "hist")
    second = rack.releases("hist")[0]["id"]
    rack.ok("releases", "rollback", str(first), "-a", "hist")
    rack.ok("scale", "web", "--count", "2", "-a", "hist")
    rack.ok("restart", "-a", "hist")
    rack.ok("releases", "promote", str(second), "-a", "hist")
    failed = rack.run("env", "set", "BOOT_FAIL=1", "--promote", "-a", "hist")
    assert failed.code == 1

    listed = json.loads(rack.ok("releases", "history", "--json", "-a", "hist"))
    assert [p["action"] for p in listed] == [
        "env",
        "promote",
        "restart",
        "scale",
        "rollback",
        "env",
        "deploy",
    ]
    assert [p["outcome"] for p in listed] == ["reverted"] + ["succeeded"] * 6
    assert listed[1]["release"] == second and listed[-1]["release"] == first
    assert listed[0]["description"] == "env add:BOOT_FAIL" and listed[0]["reason"]
    assert all(p["created_by"] for p in listed)

    table = rack.ok("releases", "history", "--limit", "2", "-a", "hist").splitlines()
    assert re.split(r"\s{2,}", table[0]) == [
        "ID",
        "RELEASE",
        "KIND",
        "ACTOR",
        "STARTED",
        "ENDED",
        "OUTCOME",
        "REASON",
    ]
    assert len(table) == 3
    row = re.split(r"\s{2,}", table[2])
    assert row[0] == listed[1]["id"] and row[1:3] == [second, "promote"]
    assert "succeeded" in row
    result = rack.run("releases", "history", "-a", "nosuchapp")
    assert result.code == 1 and result.err.startswith("ERROR: ")
