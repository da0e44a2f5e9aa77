"""Builds moved between racks: `builds export B > build.tgz`, `builds import < build.tgz`.

An export is a gzip tar of `shipmate-build.json` (what the build is: manifest, description,
the directory it was built in, and a SHA-256 of every file and link) and `build/`, the build
directory as built, virtualenv included, so an import needs no rebuild. A virtualenv's links
to the interpreter are absolute, which an upload may not carry: they are left out and made
again on import (`python -m venv --upgrade --without-pip`, packages untouched), and the
virtualenv's scripts, which name their directory, are pointed at the new one.

An import is an upload like any other (size limits, safe extraction); then every file must
match its checksum and no file may be missing or extra before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipmate.builder.archive import safe_extract
from shipmate.domain.errors import InvalidInput
from shipmate.domain.humanize import utcnow
from shipmate.domain.manifest import find_manifest, load_manifest
from shipmate.domain.manifest_commands import check_source
from shipmate.services import audit
from shipmate.services.apps import ensure_changeable
from shipmate.services.builds import freeze, staged
from shipmate.services.context import Context
from shipmate.services.retention import PRUNED
from shipmate.structs import Build, Release

FORMAT = "shipmate-build/1"
META = "shipmate-build.json"
TREE = "build"


@dataclass(frozen=True)
class Imported:
    build: Build
    release: Release
    origin: str  # "<app>/<build>" it was exported from


def export(ctx: Context, app: str, build_id: str) -> Path:
    """A temporary file holding the export of a complete build; the caller removes it."""
    with ctx.store.unit_of_work() as uow:
        build = uow.builds.get(app, build_id)
    if build.status == PRUNED:
        raise InvalidInput(f"build {build_id} was pruned: there is nothing left to export")
    if build.status != "complete":
        raise InvalidInput(f"build {build_id} is {build.status}: only a complete one exports")
    directory = ctx.settings.builds_dir / build.id
    ctx.settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=ctx.settings.uploads_dir, suffix=".tgz")
    os.close(fd)
    try:
        with tarfile.open(name, "w:gz") as tar:
            members, sums = _members(directory)
            meta = {
                "format": FORMAT,
                "app": build.app,
                "build": build.id,
                "description": build.description,
                "manifest": build.manifest,
                "manifest_name": build.manifest_name,
                "directory": str(directory),
                "files": sums,
            }
            data = json.dumps(meta, indent=1, sort_keys=True).encode()
            info = tarfile.TarInfo(META)
            info.size, info.mode, info.mtime = len(data), 0o644, int(utcnow().timestamp())
            tar.addfile(info, io.BytesIO(data))
            for path, relative in members:
                tar.add(path, arcname=f"{TREE}/{relative}" if relative else TREE, recursive=False)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _members(directory: Path) -> tuple[list[tuple[Path, str]], dict[str, str]]:
    """What goes in (directories, files, relative links), and each file's and link's sum."""
    members: list[tuple[Path, str]] = [(directory, "")]
    sums: dict[str, str] = {}
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            path = Path(root, name)
            relative = path.relative_to(directory).as_posix()
            if path.is_symlink():
                target = os.readlink(path)
                if target.startswith("/"):
                    continue  # a virtualenv's interpreter: made again on import
                sums[relative] = "link:" + target
            elif path.is_file():
                sums[relative] = _sha256(path)
            members.append((path, relative))
    return members, sums


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_build(ctx: Context, app: str, upload: Path) -> Imported:
    """Check an uploaded export; only a whole, intact one becomes a build and a release."""
    with staged(ctx, upload) as staging:
        safe_extract(upload, staging / "x", max_bytes=ctx.settings.max_upload)
        meta = _meta(staging / "x" / META)
        tree = staging / "x" / TREE
        _verify(tree, meta["files"])
        manifest_name, manifest_text = find_manifest(tree)
        if (manifest_name, manifest_text) != (meta["manifest_name"], meta["manifest"]):
            raise InvalidInput("build export damaged: its manifest differs from its record")
        check_source(
            load_manifest(manifest_text, manifest_name),
            tree,
            manifest_name,
            containers=ctx.settings.containers,
        )
        with ctx.store.unit_of_work() as uow:
            ensure_changeable(uow.apps.lock(app))
            build_id = uow.builds.new_id()
            target = ctx.settings.builds_dir / build_id
            _relocate(tree, meta["directory"], target)
            tree.rename(target)
            origin = f"{meta['app']}/{meta['build']}"
            build = uow.builds.add(
                app, meta["description"], manifest_text, manifest_name, build_id=build_id
            )
            latest = uow.releases.latest(app)
            release = uow.releases.add(
                app,
                build_id,
                dict(latest.env) if latest else {},
                manifest_text,
                manifest_name,
                build.description,
            )
            now = utcnow()
            build = uow.builds.update(
                build_id, status="complete", release_id=release.id, started_at=now, ended_at=now
            )
            audit.record(uow, "build.import", app, build_id, f"import of {origin}")
    freeze(ctx.settings.builds_dir / build_id)
    return Imported(build, release, origin)


def _meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InvalidInput(
            f"not a build export: no readable {META} (make one with `shipmate builds export`)"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InvalidInput(f"not a build export of this version: {META} is not {FORMAT}")
    kinds: dict[str, type] = {"app": str, "build": str, "description": str, "manifest": str}
    kinds |= {"manifest_name": str, "directory": str, "files": dict}
    for key, kind in kinds.items():
        if not isinstance(meta.get(key), kind):
            raise InvalidInput(f"build export damaged: {META} has no valid {key!r}")
    return meta


def _verify(tree: Path, sums: dict[str, Any]) -> None:
    if not tree.is_dir():
        raise InvalidInput(f"build export damaged: no {TREE}/ directory")
    found: dict[str, str] = {}
    for root, _, files in os.walk(tree):
        for name in files:
            path = Path(root, name)
            relative = path.relative_to(tree).as_posix()
            found[relative] = "link:" + os.readlink(path) if path.is_symlink() else _sha256(path)
        for name in os.listdir(root):
            path = Path(root, name)
            if path.is_symlink() and path.is_dir():
                found[path.relative_to(tree).as_posix()] = "link:" + os.readlink(path)
    for relative in sorted(set(found) | set(sums)):
        if relative not in found:
            raise InvalidInput(f"build export damaged: {relative} is missing")
        if relative not in sums:
            raise InvalidInput(f"build export damaged: {relative} is not in its record")
        if found[relative] != sums[relative]:
            raise InvalidInput(f"build export damaged: {relative} does not match its checksum")


def _relocate(tree: Path, old: str, new: Path) -> None:
    """Make the virtualenvs of a build work at `new`: their interpreter links again, and
    their scripts (shebangs, activate) naming `new` instead of `old`."""
    for config in tree.rglob("pyvenv.cfg"):
        venv = config.parent
        settings = {
            key.strip(): value.strip()
            for key, _, value in (line.partition("=") for line in config.read_text().splitlines())
        }
        python = settings.get("executable") or shutil.which("python3") or "python3"
        if not Path(python).exists():
            raise InvalidInput(
                f"the build's virtualenv needs {python}, which this machine does not have"
            )
        # What is left of its interpreter links (relative ones, to the absolute one left
        # out) would leave a loop: venv makes them all again.
        for link in (venv / "bin").glob("python*"):
            if link.is_symlink():
                link.unlink()
        subprocess.run(
            [python, "-m", "venv", "--upgrade", "--without-pip", str(venv)],
            check=True,
            capture_output=True,
            timeout=120,
            # The rack's own umask (077) would leave what venv writes to the rack alone.
            umask=0o022,
        )
        old_venv = os.path.join(old, venv.relative_to(tree).as_posix()).encode()
        new_venv = str(new / venv.relative_to(tree)).encode()
        for script in (venv / "bin").iterdir():
            if script.is_symlink() or not script.is_file():
                continue
            data = script.read_bytes()
            if old_venv in data and b"\0" not in data[:1024]:
                script.write_bytes(data.replace(old_venv, new_venv))
