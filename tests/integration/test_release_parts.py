"""Issue 14, point 3: releases made from parts, and environment changes based on a release."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.integration.conftest import EXAMPLE, Rack

pytestmark = pytest.mark.integration


def newest(rack: Rack, app: str) -> dict[str, object]:
    return rack.releases(app)[0]


def test_a_release_from_one_build_and_another_environment(rack: Rack, tmp_path: Path) -> None:
    rack.deploy("parts")
    r1 = newest(rack, "parts")
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)
    (source / "NOTES.txt").write_text("a second build\n")
    rack.ok("deploy", str(source), "-a", "parts")
    rack.ok("env", "set", "FOO=on", "--promote", "-a", "parts")
    r3 = newest(rack, "parts")
    assert r3["build"] != r1["build"]

    # R1's build (and manifest) with R3's environment, promoted.
    out = rack.ok(
        "releases", "create", "--build-from", str(r1["id"]), "--env-from", str(r3["id"]),
        "--promote", "-a", "parts",
    )  # fmt: skip
    made = re.match(r"Release: (R[A-Z]{9}) \((.*)\)\n", out)
    assert made, out
    assert made.group(2) == f"build {r1['build']} of {r1['id']}, env of {r3['id']}"
    assert out.rstrip().endswith("OK")
    served = rack.get("parts").json()
    assert (served["release"], served["build"], served["FOO"]) == (
        made.group(1),
        r1["build"],
        "on",
    )
    listed = newest(rack, "parts")
    assert (listed["id"], listed["description"], listed["active"]) == (
        made.group(1),
        made.group(2),
        True,
    )

    # One part only: the other is the latest release's.
    out = rack.ok("releases", "create", "--env-from", str(r1["id"]), "-a", "parts")
    assert re.fullmatch(
        rf"Release: R[A-Z]{{9}} \(build {r1['build']} of {made.group(1)}, env of {r1['id']}\)\n",
        out,
    )
    result = rack.run("releases", "create", "-a", "parts")
    assert (result.code, result.err) == (1, "ERROR: give --build-from R1, --env-from R2, or both\n")
    result = rack.run("releases", "create", "--build-from", "RAAAAAAAAA", "-a", "parts")
    assert (result.code, result.err) == (1, "ERROR: no such release: RAAAAAAAAA (app parts)\n")


def test_env_set_on_a_named_release_keeps_its_build_and_environment(rack: Rack) -> None:
    rack.deploy("based")
    r1 = newest(rack, "based")
    rack.ok("env", "set", "LATER=1", "--promote", "-a", "based")
    out = rack.ok("env", "set", "FIX=yes", "--release", str(r1["id"]), "-a", "based")
    made = re.fullmatch(r"Setting FIX\.\.\. OK\nRelease: (R[A-Z]{9})\n", out)
    assert made, out
    info = rack.ok("releases", "info", made.group(1), "-a", "based", "--json")
    assert f'"description": "env add:FIX from {r1["id"]}"' in info
    assert '"LATER"' not in info and '"FIX": "yes"' in info
    assert f'"build": "{r1["build"]}"' in info
    out = rack.ok("env", "unset", "FIX", "--release", made.group(1), "-a", "based")
    assert out.startswith("Unsetting FIX... OK\nRelease: R")
    assert newest(rack, "based")["description"] == f"env remove:FIX from {made.group(1)}"
