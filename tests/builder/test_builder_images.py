"""Image builds against a real Docker engine and registry (scripts/engine-up.sh)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipmate.builder import images
from shipmate.builder.errors import BuildFailed
from tests.engine import Engine, find_engine

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return find_engine()


@pytest.fixture
def client(engine: Engine) -> Iterator[Any]:
    client = engine.client()
    yield client
    client.close()


def _tag(engine: Engine, service: str) -> str:
    return f"{engine.registry}/test-{secrets.token_hex(4)}:{service}.BTESTBUILD"


def _run(client: Any, tag: str, command: list[str] | None = None) -> str:
    out = client.containers.run(tag, command, remove=True)
    return bytes(out).decode()


def test_a_dockerfile_is_built_with_its_build_args_and_dockerignore(
    client: Any, engine: Engine, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM local/debian:bookworm\nARG GREETING=hi\nCOPY . /srv\n"
        'CMD ["sh", "-c", "echo $GREETING; ls /srv"]\nENV GREETING=$GREETING\n'
    )
    (tmp_path / "kept.txt").write_text("x")
    (tmp_path / "secret.txt").write_text("x")
    (tmp_path / ".dockerignore").write_text("secret.txt\n")
    tag = _tag(engine, "web")
    lines: list[str] = []
    assert images.build_and_push(
        client, [images.ImageBuild("web", tmp_path, tag)], lines.append, {"GREETING": "yo"}
    ) == [tag]
    try:
        assert f"Pushing {tag}" in lines
        out = _run(client, tag).split()
        assert out[0] == "yo" and "kept.txt" in out and "secret.txt" not in out
        # Pushed: the registry holds it, so a node without the local image can run it.
        assert client.images.get_registry_data(tag).id.startswith("sha256:")
    finally:
        images.remove_images(client, [tag])


def test_a_python_service_without_dockerfile_gets_one_from_the_base_image(
    client: Any, engine: Engine
) -> None:
    tag = _tag(engine, "web")
    lines: list[str] = []
    images.build_and_push(client, [images.ImageBuild("web", EXAMPLE, tag)], lines.append)
    try:
        assert any("generating one from local/debian:bookworm" in line for line in lines)
        assert "app.py" in _run(client, tag, ["ls"]).split()
    finally:
        images.remove_images(client, [tag])


def test_a_failed_build_leaves_no_image(client: Any, engine: Engine, tmp_path: Path) -> None:
    good = tmp_path / "good"
    bad = tmp_path / "bad"
    for d in (good, bad):
        d.mkdir()
    (good / "Dockerfile").write_text("FROM local/debian:bookworm\nCMD true\n")
    (bad / "Dockerfile").write_text("FROM local/debian:bookworm\nRUN exit 3\n")
    first, second = _tag(engine, "a"), _tag(engine, "b")
    builds = [images.ImageBuild("a", good, first), images.ImageBuild("b", bad, second)]
    with pytest.raises(BuildFailed, match=r"image build failed: .*returned a non-zero code: 3"):
        images.build_and_push(client, builds, lambda _: None)
    for tag in (first, second):
        assert not client.images.list(name=tag.rpartition(":")[0])
