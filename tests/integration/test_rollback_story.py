"""The reference page's scenario, for real: deploy, env set --promote, roll back."""

from __future__ import annotations

import re

from tests.integration.conftest import Rack

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
ID_RE = re.compile(r"^[A-Z]{10}$")


def test_rollback_copies_the_target_and_serves_it(rack: Rack) -> None:
    out = rack.deploy("myapp")
    build_id = re.search(r"^Build:   (B[A-Z]{9})$", out, re.M).group(1)  # type: ignore[union-attr]
    r1 = re.search(r"^Release: (R[A-Z]{9})$", out, re.M).group(1)  # type: ignore[union-attr]
    assert out.rstrip().endswith("OK")
    assert rack.get("myapp").json()["release"] == r1

    out = rack.ok("env", "set", "FOO=bar", "--promote", "-a", "myapp")
    assert out.startswith("Setting FOO... OK\nRelease: R")
    r2 = re.search(r"^Release: (R[A-Z]{9})$", out, re.M).group(1)  # type: ignore[union-attr]
    assert rack.get("myapp").json() | {"FOO": "bar", "release": r2} == rack.get("myapp").json()

    listed = rack.releases("myapp")
    assert [r["id"] for r in listed] == [r2, r1]
    assert listed[0]["description"] == "env add:FOO" and listed[0]["active"]

    before = {r["id"]: r for r in listed}
    builds_before = rack.builds("myapp")

    out = rack.ok("releases", "rollback", r1, "-a", "myapp")
    lines = out.splitlines()
    assert lines[0] == f"Rolling back to {r1}..."
    events = lines[1:-1]
    assert events, out
    for line in events:
        assert re.match(rf"^{STAMP} system/local/\S+ .+$", line), line
    assert re.match(rf"^{STAMP} system/local/atom/app Status: Running => Pending$", events[0])
    assert re.match(rf"^{STAMP} system/local/atom/app Status: Updating => Running$", events[-1])
    assert any("Status: Pending => Updating" in line for line in events)
    assert any(re.search(r"system/local/web Scaled up release R[A-Z]{9} to 1$", x) for x in events)
    r3 = re.fullmatch(r"OK, (R[A-Z]{9})", lines[-1]).group(1)  # type: ignore[union-attr]
    assert r3 not in (r1, r2)

    # The copy is listed first and active, with R1's build and description.
    table = rack.ok("releases", "-a", "myapp").splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["ID", "STATUS", "BUILD", "CREATED", "DESCRIPTION"]
    first = re.split(r"\s{2,}", table[1])
    assert first[:3] == [r3, "active", build_id]
    assert first[-1] == before[r1]["description"]
    assert [re.split(r"\s{2,}", row)[0] for row in table[1:]] == [r3, r2, r1]
    # By the STATUS column: a description (the commit's subject) may hold the word.
    status = slice(table[0].index("STATUS"), table[0].index("BUILD"))
    assert [row[status].strip() for row in table[1:4]] == ["active", "", ""]

    after = {r["id"]: r for r in rack.releases("myapp")}
    for rid in (r1, r2):  # the originals are untouched (bar the active flag of R2)
        moved = {"active": False, "status": ""}  # the status says `active` too
        assert {**after[rid], **moved} == {**before[rid], **moved}
    assert after[r3]["env"] == before[r1]["env"]
    assert after[r3]["build"] == before[r1]["build"] == build_id
    assert after[r3]["copied_from"] == r1
    assert rack.builds("myapp") == builds_before  # no rebuild

    body = rack.get("myapp").json()
    assert body["release"] == r3
    assert body["FOO"] is None

    info = rack.ok("releases", "info", r3, "-a", "myapp")
    assert f"Copied from  {r1}" in info
    # Only the Env section: a random ID (RFFOODJXOY) or the commit subject may spell FOO.
    env_section = info.split("\nEnv", 1)[1]
    assert "FOO" not in env_section


def test_releases_table_format(rack: Rack) -> None:
    rack.deploy("tabled")
    out = rack.ok("releases", "-a", "tabled")
    header, row = out.splitlines()
    assert header.startswith("ID          STATUS  BUILD       CREATED")
    assert header.rstrip().endswith("DESCRIPTION")
    assert re.match(r"^R[A-Z]{9}  active  B[A-Z]{9}  (now|\d+ seconds? ago) +build ", row)
    # Columns line up with the header.
    assert row.index("active") == header.index("STATUS")
    assert row.index("B", 10) == header.index("BUILD")
