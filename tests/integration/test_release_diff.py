"""Issue 14, point 1: `shipmate releases diff`, each kind of difference, masked and revealed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import EXAMPLE, Rack

pytestmark = pytest.mark.integration

APP = "differ"


def releases_of(rack: Rack) -> list[str]:
    """Release ids, oldest first."""
    return [r["id"] for r in reversed(rack.releases(APP))]  # type: ignore[misc]


def as_role(rack: Rack, name: str, role: str) -> Rack:
    out = rack.ok("rack", "tokens", "create", "--name", name, "--role", role)
    token = out.splitlines()[1]
    return Rack(rack.home, dict(rack.env, SHIPMATE_TOKEN=token, SHIPMATE_RACK=rack.info["api"]))


def git_source(tmp_path: Path) -> Path:
    """examples/hello in a git repository of one commit: deploys describe it by its commit."""
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)
    for args in (
        ("init", "-q"),
        ("add", "."),
        ("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first"),
    ):
        subprocess.run(["git", *args], cwd=source, check=True)
    return source


def commit(source: Path, message: str) -> None:
    subprocess.run(["git", "add", "."], cwd=source, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message],
        cwd=source,
        check=True,
    )


def test_releases_diff_shows_env_build_manifest_and_release_commands(
    rack: Rack, tmp_path: Path
) -> None:
    source = git_source(tmp_path)
    rack.ok("apps", "create", APP)
    rack.ok("deploy", str(source), "-a", APP)
    rack.ok("env", "set", "KEEP=1", "CHANGE=old", "GONE=x", "--promote", "-a", APP)
    r2 = releases_of(rack)[-1]
    rack.ok("env", "set", "CHANGE=new", "ADDED=y", "--promote", "-a", APP)
    rack.ok("env", "unset", "GONE", "--promote", "-a", APP)
    r4 = releases_of(rack)[-1]

    # Environment only: added, changed, removed, values masked by default.
    out = rack.ok("releases", "diff", r2, r4, "-a", APP)
    lines = out.splitlines()
    assert re.fullmatch(rf"From: {r2}  B[A-Z]{{9}}  env add:CHANGE add:GONE add:KEEP", lines[0])
    assert re.fullmatch(rf"To:   {r4}  B[A-Z]{{9}}  env remove:GONE  \(active\)", lines[1])
    assert lines[2:6] == [
        "Environment:",
        "  + ADDED=****",
        "  ~ CHANGE: **** => ****",
        "  - GONE",
    ]
    assert re.fullmatch(r"Build: the same \(B[A-Z]{9}\)", lines[6])
    assert lines[7:] == ["Manifest: the same", "Release commands in between: none"]
    revealed = rack.ok("releases", "diff", r2, "--reveal", "-a", APP)  # R2: the active one
    assert "  + ADDED=y\n  ~ CHANGE: old => new\n  - GONE\n" in revealed

    # A new build with another manifest and a release command: the build, its commit, the
    # manifest as a unified diff, the release command run in between.
    manifest = source / "shipmate.yml"
    manifest.write_text("release: echo migrating\n" + manifest.read_text())
    commit(source, "add a release command")
    rack.ok("deploy", str(source), "-a", APP)
    r5 = releases_of(rack)[-1]
    out = rack.ok("releases", "diff", r4, "-a", APP, cwd=source)
    assert "Environment: the same\n" in out
    build = re.search(r"^Build: (B[A-Z]{9}) => (B[A-Z]{9})$", out, re.M)
    assert build and build.group(1) != build.group(2), out
    first, second = re.findall(r"^  B[A-Z]{9}  build ([0-9a-f]{12}) (.*)$", out, re.M)
    assert (first[1], second[1]) == ("first", "add a release command")
    # In the repository, the commits between the two builds.
    assert re.search(
        rf"^Commits: {first[0]}\.\.\.{second[0]}\n  [0-9a-f]+ add a release", out, re.M
    )
    assert f"--- {r4}/shipmate.yml\n+++ {r5}/shipmate.yml\n" in out
    assert "\n+release: echo migrating\n" in out
    assert re.search(rf"^  P[A-Z]{{9}} of {r5}: echo migrating \(Running\)$", out, re.M), out

    data = json.loads(rack.ok("releases", "diff", r4, r5, "--json", "-a", APP))
    assert data["from"]["release"] == r4 and data["to"]["release"] == r5
    assert data["to"]["active"] and data["to"]["commit"] == second[0]
    assert [c["command"] for c in data["release_commands"]] == ["echo migrating"]
    # Either way round: what moving between them crosses.
    back = json.loads(rack.ok("releases", "diff", r5, r4, "--json", "-a", APP))
    assert [c["release"] for c in back["release_commands"]] == [r5]


def test_a_viewer_sees_which_keys_changed_not_their_values(rack: Rack) -> None:
    rack.ok("apps", "create", "secretive")
    rack.ok("deploy", str(EXAMPLE), "-a", "secretive")
    first = rack.releases("secretive")[0]["id"]
    rack.ok("env", "set", "PASSWORD=hunter2", "--promote", "-a", "secretive")
    viewer = as_role(rack, "diff-viewer", "viewer")
    data = json.loads(viewer.ok("releases", "diff", str(first), "--json", "-a", "secretive"))
    assert data["env"]["added"] == {"PASSWORD": "****"}
    refused = viewer.run("releases", "diff", str(first), "--reveal", "-a", "secretive")
    assert (refused.code, refused.err) == (
        1,
        "ERROR: forbidden: a viewer sees which keys changed, not their values: drop --reveal\n",
    )
    deployer = as_role(rack, "diff-deployer", "deployer")
    data = json.loads(
        deployer.ok("releases", "diff", str(first), "--reveal", "--json", "-a", "secretive")
    )
    assert data["env"]["added"] == {"PASSWORD": "hunter2"}


def test_a_bad_release_is_one_line_and_changes_nothing(rack: Rack) -> None:
    rack.ok("apps", "create", "lonely")
    rack.ok("deploy", str(EXAMPLE), "-a", "lonely")
    result = rack.run("releases", "diff", "RAAAAAAAAA", "-a", "lonely")
    assert (result.code, result.err) == (1, "ERROR: no such release: RAAAAAAAAA (app lonely)\n")
    result = rack.run("releases", "diff", "nonsense", "-a", "lonely")
    assert result.code == 1 and result.err.startswith("ERROR: invalid release id 'nonsense'")
