"""What each service runs: its manifest `command:`, else its line of a Procfile.

Heroku and Dokku apps name their processes in a `Procfile` (`web: gunicorn app:app`); a
service without `command:` takes its line from the Procfile of its `build:` directory. The
build checks this when it loads the manifest (`check_source`), so a service with nothing to
run is refused at `shipmate build`, not at the promotion.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from shipmate.domain.errors import ManifestError
from shipmate.domain.manifest_model import Manifest, Service

PROCFILE = "Procfile"
# Heroku's rule: a process type, a colon, the command.
_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+?)\s*$")


def parse_procfile(text: str) -> dict[str, str]:
    """Process type -> command; blank lines, comments and malformed lines are skipped."""
    commands: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is not None and not line.lstrip().startswith("#"):
            commands[match[1]] = match[2]
    return commands


def build_path(service: Service) -> str:
    """The service's build directory as a clean relative path ("." for the source's root)."""
    return str(PurePosixPath(service.build))


def _procfile(source: Path, service: Service) -> dict[str, str]:
    path = source / build_path(service) / PROCFILE
    try:
        return parse_procfile(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return {}


def commands(manifest: Manifest, source: Path) -> dict[str, str]:
    """The command of every service that has one, from the manifest or a Procfile."""
    found: dict[str, str] = {}
    for service in manifest.services:
        command = service.command or _procfile(source, service).get(service.name)
        if command:
            found[service.name] = command
    return found


def has_dockerfile(source: Path, service: Service) -> bool:
    return (source / build_path(service) / "Dockerfile").is_file()


def check_source(manifest: Manifest, source: Path, filename: str, containers: bool = False) -> None:
    """Refuse a build whose services have no directory in `source` or nothing to run.

    `containers`: the rack runs images, so a service with a Dockerfile and no command runs
    its image's CMD."""
    root = source.resolve()
    for service in manifest.services:
        path = f"{filename}: services.{service.name}"
        directory = (source / build_path(service)).resolve()
        if not directory.is_relative_to(root) or not directory.is_dir():
            raise ManifestError(f"{path}.build: {service.build} is not a directory of the source")
    found = commands(manifest, source)
    for service in manifest.services:
        if service.name in found or (containers and has_dockerfile(source, service)):
            continue
        where = build_path(service)
        procfile = PROCFILE if where == "." else f"{where}/{PROCFILE}"
        if has_dockerfile(source, service):
            raise ManifestError(
                f"{filename}: services.{service.name}: a Dockerfile needs a container runtime: "
                "this rack runs processes (`rack start --runtime swarm` runs images); "
                f"or add `command:` or a line `{service.name}: COMMAND` to {procfile}"
            )
        raise ManifestError(
            f"{filename}: services.{service.name}: no command: add `command:` or a line "
            f"`{service.name}: COMMAND` to {procfile}"
        )
