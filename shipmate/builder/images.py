"""Image builds for container runtimes: one image per service of a build, pushed to the rack's
registry.

A service whose `build:` directory holds a `Dockerfile` is built from it; one without gets a
Dockerfile generated from the rack's base image (Debian's Python, the service's requirements
in a virtualenv), so an app that runs on the local runtime runs unchanged in a container.
The Docker engine builds with its classic builder (the Docker SDK for Python's `build`), which
honours the directory's `.dockerignore`. The base image never comes from outside the machine:
`pull=False`, and scripts/engine-up.sh makes it locally.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipmate.builder.errors import BuildFailed

__all__ = ["BASE_IMAGE", "ImageBuild", "build_and_push", "generated_dockerfile", "remove_images"]

BASE_IMAGE = "local/debian:bookworm"
DOCKERFILE = "Dockerfile"
# Where a generated image holds the service's directory; a service's command runs there.
APP_DIR = "/app"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def generated_dockerfile(src: Path, base: str = BASE_IMAGE) -> str:
    """The Dockerfile of a service that has none: its directory on the base image, with its
    Python requirements installed in `/app/.venv` (first on PATH, as on the local runtime)."""
    lines = [f"FROM {base}", f"WORKDIR {APP_DIR}", f"COPY . {APP_DIR}"]
    if (src / "requirements.txt").is_file():
        install = "-r requirements.txt"
    elif (src / "pyproject.toml").is_file():
        install = "."
    else:
        install = ""
    if install:
        lines += [
            f"RUN rm -rf .venv && python3 -m venv .venv && .venv/bin/pip install "
            f"--disable-pip-version-check --no-input --progress-bar off {install}",
        ]
    lines += [f"ENV PATH={APP_DIR}/.venv/bin:{SYSTEM_PATH}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ImageBuild:
    """What to build for one service: its directory, the tag, whether it has a Dockerfile."""

    service: str
    directory: Path
    tag: str  # shipmate.domain.images.image_ref

    @property
    def has_dockerfile(self) -> bool:
        return (self.directory / DOCKERFILE).is_file()


def build_and_push(
    client: Any,
    builds: Iterable[ImageBuild],
    log: Callable[[str], None],
    build_args: Mapping[str, str] | None = None,
    base: str = BASE_IMAGE,
) -> list[str]:
    """Build each image, then push them all; the tags pushed. On any failure, the images this
    call tagged are removed again and BuildFailed says what failed."""
    tagged: list[str] = []
    try:
        for item in builds:
            log(f"Building image {item.tag} (service {item.service})")
            if item.has_dockerfile:
                _build(client, item.directory, DOCKERFILE, item.tag, build_args, log)
            else:
                log(f"No {DOCKERFILE} in {item.directory.name or '.'}: generating one from {base}")
                with tempfile.TemporaryDirectory(prefix="shipmate-dockerfile-") as scratch:
                    # Outside the context: the SDK sends it along under a name of its own.
                    dockerfile = Path(scratch) / DOCKERFILE
                    dockerfile.write_text(generated_dockerfile(item.directory, base))
                    _build(client, item.directory, str(dockerfile), item.tag, build_args, log)
            tagged.append(item.tag)
        for tag in dict.fromkeys(tagged):
            log(f"Pushing {tag}")
            _push(client, tag)
    except BaseException:
        remove_images(client, tagged)
        raise
    return tagged


def remove_images(client: Any, tags: Iterable[str]) -> None:
    """Remove local tags (a failed build leaves no image behind); missing ones are fine."""
    for tag in dict.fromkeys(tags):
        # Already gone, or the engine is: nothing to undo.
        with contextlib.suppress(Exception):
            client.api.remove_image(tag, force=True)


def _build(
    client: Any,
    context: Path,
    dockerfile: str,
    tag: str,
    build_args: Mapping[str, str] | None,
    log: Callable[[str], None],
) -> None:
    import docker.errors

    try:
        stream = client.api.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=dict(build_args or {}),
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for chunk in stream:
            if "stream" in chunk:
                for line in str(chunk["stream"]).splitlines():
                    if line.strip():
                        log(line)
            if "error" in chunk:
                raise BuildFailed(f"image build failed: {str(chunk['error']).strip()}")
    except docker.errors.APIError as exc:
        raise BuildFailed(f"image build failed: {exc.explanation or exc}") from None
    except docker.errors.DockerException as exc:
        raise BuildFailed(f"image build failed: the Docker engine: {exc}") from None


def _push(client: Any, tag: str) -> None:
    import docker.errors

    repository, _, name = tag.rpartition(":")
    try:
        for chunk in client.api.push(repository, tag=name, stream=True, decode=True):
            if "error" in chunk:
                raise BuildFailed(f"pushing {tag} failed: {str(chunk['error']).strip()}")
    except docker.errors.APIError as exc:
        raise BuildFailed(f"pushing {tag} failed: {exc.explanation or exc}") from None


def engine(docker_host: str | None = None) -> Any:
    """A client of the Docker engine at `docker_host` (default: DOCKER_HOST)."""
    import docker

    if docker_host:
        return docker.DockerClient(base_url=docker_host, timeout=600)
    return docker.from_env(timeout=600)
