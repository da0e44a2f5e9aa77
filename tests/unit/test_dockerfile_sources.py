"""A Dockerfile service with no command: refused in one line on the local runtime, accepted
(its image's CMD runs) on a container runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipmate.domain.errors import ManifestError
from shipmate.domain.manifest import load_manifest
from shipmate.domain.manifest_commands import check_source

MANIFEST = "services:\n  web:\n    build: web\n    port: 8000\n"


def _source(tmp_path: Path) -> Path:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text("FROM local/debian:bookworm\nCMD true\n")
    return tmp_path


def test_local_says_a_dockerfile_needs_a_container_runtime(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        check_source(load_manifest(MANIFEST, "convox.yml"), _source(tmp_path), "convox.yml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("convox.yml: services.web: a Dockerfile needs a container runtime: ")


def test_a_container_runtime_runs_the_images_cmd(tmp_path: Path) -> None:
    manifest = load_manifest(MANIFEST, "convox.yml")
    check_source(manifest, _source(tmp_path), "convox.yml", containers=True)
