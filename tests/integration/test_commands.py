"""The rest of the CLI surface against a real rack: rack, apps, builds, manifest, logs, API."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx

from tests.integration.conftest import EXAMPLE, Rack


def test_rack_and_apps(rack: Rack) -> None:
    out = rack.ok("rack")
    keys = [line.split()[0] for line in out.splitlines()]
    assert keys == ["Name", "Provider", "Router", "Status", "Version"]
    assert re.search(r"^Provider\s+local$", out, re.M)
    assert re.search(rf"^Router\s+{re.escape(rack.info['router'])}$", out, re.M)

    assert rack.ok("apps", "create", "lister") == "Creating lister... OK\n"
    table = rack.ok("apps").splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["APP", "STATUS", "RELEASE"]
    assert any(re.match(r"^lister\s+running\s*$", row) for row in table[1:])
    result = rack.run("apps", "create", "lister")
    assert (result.code, result.err) == (1, "ERROR: app lister already exists\n")
    result = rack.run("apps", "create", "Bad_Name")
    assert result.code == 1 and result.err.startswith("ERROR: invalid app name 'Bad_Name'")


def test_builds_manifest_logs_and_delete(rack: Rack, tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)
    text = (source / "shipmate.yml").read_text() + "    agent: true\n"
    (source / "shipmate.yml").write_text(text)
    rack.ok("apps", "create", "builder")
    out = rack.ok("build", str(source), "-a", "builder", "-d", "first build")
    assert "WARNING: ignored by this runtime: services.web.agent" in out
    build_id = re.search(r"^Build:   (B[A-Z]{9})$", out, re.M).group(1)  # type: ignore[union-attr]
    release_id = re.search(r"^Release: (R[A-Z]{9})$", out, re.M).group(1)  # type: ignore[union-attr]

    table = rack.ok("builds", "-a", "builder").splitlines()
    assert re.split(r"\s{2,}", table[0]) == [
        "ID", "STATUS", "RELEASE", "STARTED", "ELAPSED", "DESCRIPTION"
    ]  # fmt: skip
    assert re.split(r"\s{2,}", table[1])[:3] == [build_id, "complete", release_id]
    assert table[1].endswith("first build")
    info = rack.ok("builds", "info", build_id, "-a", "builder")
    assert re.search(r"^Status\s+complete$", info, re.M)
    log = rack.ok("builds", "logs", build_id, "-a", "builder")
    assert f"Build {build_id} complete: release {release_id}" in log

    assert rack.ok("releases", "manifest", release_id, "-a", "builder") == text
    release = rack.releases("builder")[0]
    assert release["description"] == "first build" and not release["active"]  # not promoted

    rack.ok("releases", "promote", "-a", "builder")
    assert rack.get("builder").json()["release"] == release_id
    events = rack.ok("logs", "-a", "builder", "--no-follow")
    assert re.search(r"system/local/atom/app Status: Updating => Running$", events, re.M)
    filtered = rack.ok("logs", "-a", "builder", "--no-follow", "--filter", "Healthy")
    assert filtered and all("Healthy" in line for line in filtered.splitlines())

    assert rack.ok("apps", "delete", "builder") == "Deleting builder... OK\n"
    assert rack.get("builder").status_code == 404
    assert not (rack.home / "builds" / build_id).exists()
    result = rack.run("releases", "-a", "builder")
    assert result.err == "ERROR: no such app: builder\n"


def test_api_needs_the_token_and_publishes_openapi(rack: Rack) -> None:
    api = rack.info["api"]
    response = httpx.get(f"{api}/apps")
    assert response.status_code == 401 and "error" in response.json()
    response = httpx.get(f"{api}/apps", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    token = (rack.home / "token").read_text().strip()
    assert (rack.home / "token").stat().st_mode & 0o777 == 0o600
    assert httpx.get(f"{api}/apps", headers={"Authorization": f"Bearer {token}"}).is_success
    schema = httpx.get(f"{api}/openapi.json").json()
    assert "/apps/{app}/releases/{release_id}/rollback" in schema["paths"]
    assert json.dumps(schema)
