"""Builds: an upload becomes an immutable build directory, then a release."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

from shipmate.builder import images
from shipmate.builder.archive import safe_extract
from shipmate.builder.errors import BuildFailed
from shipmate.builder.python import build_python, stop_leftover
from shipmate.domain.errors import InvalidInput, ShipmateError, TooLarge
from shipmate.domain.humanize import utcnow
from shipmate.domain.images import image_ref
from shipmate.domain.manifest import Manifest, find_manifest, load_manifest
from shipmate.domain.manifest_commands import build_path, check_source
from shipmate.services import audit
from shipmate.services.apps import ensure_changeable
from shipmate.services.context import Context
from shipmate.structs import Build

FINISHED = ("complete", "failed")


def log_path(ctx: Context, build_id: str) -> Path:
    return ctx.settings.builds_dir / f"{build_id}.log"


async def receive_upload(ctx: Context, app: str, chunks: AsyncIterator[bytes]) -> Path:
    """Spool an upload to disk, refusing it as soon as it passes the size limit."""
    with ctx.store.unit_of_work() as uow:
        ensure_changeable(uow.apps.get(app))
    ctx.settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    limit = ctx.settings.max_upload
    fd, name = tempfile.mkstemp(dir=ctx.settings.uploads_dir, suffix=".tgz")
    path = Path(name)
    size = 0
    try:
        with open(fd, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(
                        f"upload too large: over {limit} bytes (limit set by SHIPMATE_MAX_UPLOAD)"
                    )
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def staged(ctx: Context, upload: Path) -> Iterator[Path]:
    """A staging directory beside the builds for an upload's contents; it and the upload are
    removed whatever happens (what the caller renamed out of it stays)."""
    ctx.settings.builds_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=ctx.settings.builds_dir, prefix=".staging-"))
    try:
        yield staging
    finally:
        upload.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)


def parse_build_args(items: list[str]) -> dict[str, str]:
    """`KEY=VALUE` build arguments; a malformed one is refused before the upload is read."""
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"build argument {item!r}: give KEY=VALUE")
        parsed[key] = value
    return parsed


def create_build(ctx: Context, app: str, upload: Path, description: str) -> Build:
    """Unpack and check an upload; only a valid one becomes a build row and directory."""
    with staged(ctx, upload) as staging:
        source = staging / "src"
        safe_extract(upload, source, max_bytes=ctx.settings.max_upload)
        manifest_name, manifest_text = find_manifest(source)
        # Refuse a bad manifest, or services with nothing to run, before any write.
        check_source(
            load_manifest(manifest_text, manifest_name),
            source,
            manifest_name,
            containers=ctx.settings.containers,
        )
        with ctx.store.unit_of_work() as uow:
            ensure_changeable(uow.apps.lock(app))
            build_id = uow.builds.new_id()
            source.rename(ctx.settings.builds_dir / build_id)
            build = uow.builds.add(
                app,
                description or f"build {build_id}",
                manifest_text,
                manifest_name,
                build_id=build_id,
            )
            audit.record(uow, "build.create", app, build_id, build.description)
    return build


async def run_build(
    ctx: Context, build: Build, build_args: Mapping[str, str] | None = None
) -> None:
    """Install the build's dependencies (on a container runtime: build and push one image per
    service, with `build_args`), then create its release (not promoted)."""
    directory = ctx.settings.builds_dir / build.id
    log_file = log_path(ctx, build.id).open("a", encoding="utf-8")

    def log(line: str) -> None:
        log_file.write(line.rstrip("\n") + "\n")
        log_file.flush()
        ctx.notifier.notify()

    with ctx.store.unit_of_work() as uow:
        uow.builds.update(build.id, status="running", started_at=utcnow())
    try:
        assert build.manifest is not None
        manifest = load_manifest(build.manifest, build.manifest_name or "shipmate.yml")
        log(f"Building {build.id} of app {build.app} from {build.manifest_name}")
        for warning in manifest.warnings:
            log(f"WARNING: {warning}")
        if ctx.settings.containers:
            await asyncio.to_thread(
                _build_images, ctx, build.app, build.id, directory, manifest, log, build_args
            )
        # Each distinct build directory once (a monorepo's services each have their own).
        for where in dict.fromkeys(
            () if ctx.settings.containers else (build_path(s) for s in manifest.services)
        ):
            if where != ".":
                services = ", ".join(s.name for s in manifest.services if build_path(s) == where)
                log(f"Directory {where} (services {services})")
            await asyncio.to_thread(
                build_python,
                directory / where,
                log,
                pid_file=_pid_file(ctx, build.id),
                app=build.app,
                home=ctx.settings.home,
                root=directory,
            )
        freeze(directory)
        with ctx.store.unit_of_work() as uow:
            # Locked: the release forks the latest one's environment.
            ensure_changeable(uow.apps.lock(build.app))
            latest = uow.releases.latest(build.app)
            release = uow.releases.add(
                build.app,
                build.id,
                dict(latest.env) if latest else {},
                build.manifest,
                build.manifest_name,
                build.description,
            )
            uow.builds.update(build.id, status="complete", release_id=release.id, ended_at=utcnow())
            audit.record(uow, "release.create", build.app, release.id, f"build {build.id}")
        log(f"Build {build.id} complete: release {release.id}")
    except Exception as exc:
        message = str(exc) if isinstance(exc, ShipmateError | BuildFailed) else repr(exc)
        log(f"ERROR: {message}")
        with ctx.store.unit_of_work() as uow:
            uow.builds.update(build.id, status="failed", error=message, ended_at=utcnow())
        # No release refers to a failed build: its directory is of no use (its log stays).
        shutil.rmtree(directory, ignore_errors=True)
    finally:
        log_file.close()
        ctx.notifier.notify()


def _build_images(
    ctx: Context,
    app: str,
    build_id: str,
    directory: Path,
    manifest: Manifest,
    log: Callable[[str], None],
    build_args: Mapping[str, str] | None,
) -> None:
    registry = ctx.settings.registry
    if not registry:
        raise BuildFailed(
            f"the {ctx.settings.runtime} runtime needs a registry: rack start --registry HOST:PORT"
        )
    wanted = [
        images.ImageBuild(
            s.name, directory / build_path(s), image_ref(registry, app, s.name, build_id)
        )
        for s in manifest.services
    ]
    with contextlib.closing(images.engine(ctx.settings.docker_host)) as client:
        images.build_and_push(client, wanted, log, build_args)


def freeze(directory: Path) -> None:
    # A build is immutable: what a rollback runs is exactly what was built.
    for path in [directory, *directory.rglob("*")]:
        if path.is_symlink():
            continue
        with contextlib.suppress(OSError):
            path.chmod(path.stat().st_mode & ~0o222)


def _pid_file(ctx: Context, build_id: str) -> Path:
    return ctx.settings.builds_dir / f"{build_id}.pid"


def fail_unfinished(ctx: Context) -> None:
    """Builds the rack was running when it stopped cannot finish: say so, stop what they
    left running and remove what they left on disk (half an install, half an upload)."""
    with ctx.store.unit_of_work() as uow:
        unfinished = uow.builds.unfinished()
        for build in unfinished:
            uow.builds.update(
                build.id,
                status="failed",
                error="the rack stopped during the build; run the build again",
                ended_at=utcnow(),
            )
    for build in unfinished:
        stop_leftover(_pid_file(ctx, build.id))
        shutil.rmtree(ctx.settings.builds_dir / build.id, ignore_errors=True)
    for staging in ctx.settings.builds_dir.glob(".staging-*"):
        shutil.rmtree(staging, ignore_errors=True)
    for upload in ctx.settings.uploads_dir.glob("*.tgz"):
        upload.unlink(missing_ok=True)


def get_build(ctx: Context, app: str, build_id: str) -> Build:
    with ctx.store.unit_of_work() as uow:
        return uow.builds.get(app, build_id)


def list_builds(ctx: Context, app: str, limit: int) -> list[Build]:
    with ctx.store.unit_of_work() as uow:
        uow.apps.get(app)
        return uow.builds.list(app, limit)


async def follow_log(
    ctx: Context, app: str, build_id: str, follow: bool, is_disconnected: Callable[[], object]
) -> AsyncIterator[str]:
    """Lines of the build log as they are written, until the build finishes."""
    get_build(ctx, app, build_id)
    path = log_path(ctx, build_id)
    offset = 0
    pending = b""
    while True:
        finished = get_build(ctx, app, build_id).status in FINISHED
        if path.exists():
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read()
            offset += len(data)
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")
        if finished or not follow:
            if pending:
                yield pending.decode("utf-8", "replace")
            return
        if await _maybe(is_disconnected()):
            return
        await ctx.notifier.wait(0.5)


async def _maybe(value: object) -> object:
    if asyncio.iscoroutine(value):
        return await value
    return value
