"""Errors are one line on stderr, exit 1, and change nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from shipmate.common.waiting import poll_until
from tests.integration.conftest import EXAMPLE, Rack


def _state(rack: Rack, app: str) -> tuple[object, ...]:
    info = json.loads(rack.ok("apps", "info", "-a", app, "--json"))
    return (
        rack.releases(app),
        rack.builds(app),
        info["status"],
        info["release"],
        rack.ok("logs", "-a", app, "--no-follow", "--since", "1h"),
    )


def _fails(rack: Rack, expected: str, *args: str, cwd: Path | None = None) -> None:
    result = rack.run(*args, cwd=cwd)
    assert result.code == 1, result
    assert result.err == f"ERROR: {expected}\n"


def test_rollback_to_unknown_or_foreign_release_changes_nothing(rack: Rack) -> None:
    rack.deploy("errs")
    rack.deploy("other")
    foreign = rack.releases("other")[0]["id"]
    before = _state(rack, "errs")
    _fails(
        rack,
        "no such release: RNOSUCHREL (app errs)",
        "releases",
        "rollback",
        "RNOSUCHREL",
        "-a",
        "errs",
    )
    _fails(
        rack,
        f"no such release: {foreign} (app errs)",
        "releases",
        "rollback",
        foreign,
        "-a",
        "errs",
    )
    assert _state(rack, "errs") == before


def test_missing_required_env_refuses_promotion(rack: Rack, tmp_path: Path) -> None:
    source = tmp_path / "needs"
    shutil.copytree(EXAMPLE, source)
    manifest = (source / "shipmate.yml").read_text()
    (source / "shipmate.yml").write_text(
        "environment:\n  - B\n  - A\n" + manifest.split("\n", 2)[2]
    )
    rack.ok("apps", "create", "needs")
    rack.ok("build", str(source), "-a", "needs")
    before = _state(rack, "needs")
    _fails(rack, "required env: A, B", "releases", "promote", "-a", "needs")
    assert _state(rack, "needs") == before
    # With the keys set, the same build promotes.
    out = rack.ok("env", "set", "A=1", "B=2", "--promote", "-a", "needs")
    assert out.rstrip().endswith("OK")
    assert rack.get("needs").status_code == 200


def test_malformed_manifest_names_the_key_and_creates_no_build(rack: Rack, tmp_path: Path) -> None:
    source = tmp_path / "bad"
    shutil.copytree(EXAMPLE, source)
    (source / "shipmate.yml").write_text("services:\n  web:\n    command: x\n    port: abc\n")
    rack.ok("apps", "create", "badman")
    before = _state(rack, "badman")
    result = rack.run("deploy", str(source), "-a", "badman")
    assert result.code == 1
    assert result.err.startswith("ERROR: shipmate.yml: services.web.port: ")
    assert result.err.count("\n") == 1
    (source / "shipmate.yml").write_text("services:\n  web:\n    command: x\n    helth: /\n")
    result = rack.run("build", str(source), "-a", "badman")
    assert result.err == "ERROR: shipmate.yml: services.web.helth: unknown key\n"
    assert _state(rack, "badman") == before
    assert list((rack.home / "builds").glob(".staging-*")) == []


def test_unknown_app(rack: Rack) -> None:
    for args in (
        ("releases",),
        ("env",),
        ("env", "set", "A=1"),
        ("releases", "rollback", "RAAAAAAAAA"),
        ("apps", "info"),
        ("builds",),
        ("deploy", str(EXAMPLE)),
    ):
        _fails(rack, "no such app: nosuchapp", *args, "-a", "nosuchapp")
    assert all(a["name"] != "nosuchapp" for a in json.loads(rack.ok("apps", "--json")))


def test_bad_env_assignment_and_no_change(rack: Rack) -> None:
    rack.ok("apps", "create", "envy")
    _fails(
        rack,
        'invalid environment assignment "1FOO=x": a key cannot start with a digit '
        "(use letters, digits and _)",
        "env",
        "set",
        "1FOO=x",
        "-a",
        "envy",
    )
    assert rack.ok("env", "set", "A=1", "-a", "envy").startswith("Setting A... OK\nRelease: R")
    out = rack.ok("env", "set", "A=1", "-a", "envy")
    assert "No change" in out and "Release:" not in out
    assert len(rack.releases("envy")) == 1
    out = rack.ok("env", "set", "B=2", "C=3", "-a", "envy")
    out = rack.ok("env", "unset", "A", "-a", "envy")
    assert out.startswith("Unsetting A... OK\nRelease: R")
    assert [r["description"] for r in rack.releases("envy")] == [
        "env remove:A",
        "env add:B add:C",
        "env add:A",
    ]
    assert rack.ok("env", "-a", "envy") == "B=2\nC=3\n"
    assert rack.ok("env", "get", "C", "-a", "envy") == "3\n"


def test_rollback_restores_the_target_environment(rack: Rack) -> None:
    rack.deploy("restore")
    rack.ok("env", "set", "GREETING=first", "--promote", "-a", "restore")
    target = rack.releases("restore")[0]["id"]
    rack.ok("env", "set", "GREETING=second", "FOO=x", "--promote", "-a", "restore")
    assert rack.get("restore").json()["greeting"] == "second"
    rack.ok("releases", "rollback", target, "-a", "restore")
    body = rack.get("restore").json()
    assert body["greeting"] == "first" and body["FOO"] is None
    assert rack.ok("env", "-a", "restore") == "GREETING=first\n"


def test_rollback_while_a_promotion_runs_is_refused(rack: Rack) -> None:
    rack.deploy("busy")
    r1 = rack.releases("busy")[0]["id"]
    slow = rack.popen("env", "set", "HEALTH_FAIL=1", "--promote", "--wait", "4", "-a", "busy")
    try:
        poll_until(
            lambda: (
                json.loads(rack.ok("apps", "info", "-a", "busy", "--json"))["status"] == "updating"
            ),
            10,
        )
        count = len(rack.releases("busy"))
        result = rack.run("releases", "rollback", r1, "-a", "busy")
        assert result.code == 1
        assert result.err.startswith("ERROR: app busy is updating (promotion of R")
        assert result.err.endswith(" in progress)\n")
        assert len(rack.releases("busy")) == count
    finally:
        slow.communicate(timeout=60)
    assert slow.returncode == 1
