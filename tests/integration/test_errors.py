"""Errors are one line on stderr, exit 1, and change nothing."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import httpx

from shipmate.common.waiting import poll_until
from shipmate.domain.errors import ErrorCode
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
    # Long enough that the CLI calls below all fall within it on a loaded machine.
    slow = rack.popen("env", "set", "HEALTH_FAIL=1", "--promote", "--wait", "15", "-a", "busy")
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
        # The API says so in a code, and names the release being promoted.
        refused = _api(rack, "POST", f"/apps/busy/releases/{r1}/rollback", json={})
        body = refused.json()
        assert (refused.status_code, body["code"]) == (409, "app_busy"), body
        assert body["error"] == result.err.removeprefix("ERROR: ").rstrip("\n")
        running = body["details"]["release"]
        assert body["details"] == {"app": "busy", "release": running}
        assert running in body["error"] and running != r1
        assert len(rack.releases("busy")) == count
    finally:
        slow.communicate(timeout=60)
    assert slow.returncode == 1


def _api(rack: Rack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    token = (rack.home / "token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return httpx.request(method, rack.info["api"] + path, headers=headers, timeout=30, **kwargs)


def _gzip_tar(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def test_every_api_error_carries_a_stable_code(rack: Rack) -> None:
    rack.ok("apps", "create", "codes")
    upload = {"headers": {"Content-Type": "application/gzip"}}
    manifest = _gzip_tar({"shipmate.yml": b"services:\n  web:\n    port: abc\n"})
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("GET", "/apps/nosuchapp", {}, 404, "not_found"),
        ("GET", "/apps/codes/releases/RNOSUCHREL", {}, 404, "not_found"),
        ("GET", "/no/such/route", {}, 404, "not_found"),
        ("PUT", "/apps", {}, 405, "method_not_allowed"),
        ("POST", "/apps", {"json": {}}, 422, "invalid_request"),
        ("GET", "/apps/codes/builds", {"params": {"limit": 0}}, 422, "invalid_request"),
        ("POST", "/apps", {"json": {"name": "codes"}}, 409, "conflict"),
        ("POST", "/apps", {"json": {"name": "Not_A_Name"}}, 400, "invalid_input"),
        ("POST", "/apps/codes/environment", {"json": {"set": ["1FOO=x"]}}, 400, "invalid_input"),
        ("POST", "/apps/codes/builds", {**upload, "content": b"not gzip"}, 400, "unsafe_upload"),
        ("POST", "/apps/codes/builds", {**upload, "content": manifest}, 400, "invalid_manifest"),
    ]  # fmt: skip
    for method, path, kwargs, status, code in cases:
        response = _api(rack, method, path, **kwargs)
        body = response.json()
        assert (response.status_code, body.get("code")) == (status, code), (method, path, body)
        assert set(body) == {"error", "code"} and "\n" not in body["error"], body
    unauthenticated = httpx.get(rack.info["api"] + "/apps", timeout=30)
    assert (unauthenticated.status_code, unauthenticated.json()["code"]) == (401, "unauthorized")
    # The document lists every code, and names the error schema on every error response.
    document = httpx.get(rack.info["api"] + "/openapi.json", timeout=30).json()
    assert document["components"]["schemas"]["ErrorCode"]["enum"] == [c.value for c in ErrorCode]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status in ("400", "401", "403", "404", "409", "422"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorOut"}, (
                    method,
                    path,
                )
