"""Retention that never breaks a rollback: which builds may go, pins, and pruning.

An app keeps every build unless `apps settings --keep N` says otherwise; `builds prune`
then removes the directories of the builds that no kept release uses. Kept are the N newest
releases, the active one, the one active before it, and every pinned one; releases stay as
rows, so the history stays whole, and a rollback to a release whose build went is refused
before anything changes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from shipmate.domain.errors import InvalidInput
from shipmate.services import audit
from shipmate.services.apps import ensure_changeable
from shipmate.services.context import Context
from shipmate.services.ports import UnitOfWork
from shipmate.structs import App, Release

PRUNED = "pruned"  # the status of a build whose directory was removed
MAX_KEEP = 100_000


@dataclass(frozen=True)
class Prunable:
    build_id: str
    releases: tuple[str, ...]  # the releases that use it, oldest first
    size: int  # bytes on disk (what `du -s -B1` counts)


def set_keep(ctx: Context, app: str, keep: int | None) -> App:
    if keep is not None and not 1 <= keep <= MAX_KEEP:
        raise InvalidInput(f"--keep takes 1 to {MAX_KEEP} releases, or `all`")
    with ctx.store.unit_of_work() as uow:
        ensure_changeable(uow.apps.lock(app))
        found = uow.apps.set_keep(app, keep)
        audit.record(uow, "app.settings", app, app, f"keep {keep or 'all'}")
    return found


def pin(ctx: Context, app: str, release_id: str, pinned: bool) -> Release:
    with ctx.store.unit_of_work() as uow:
        ensure_changeable(uow.apps.lock(app))
        release = uow.releases.get(app, release_id)
        if pinned and release.build_id and uow.builds.get(app, release.build_id).status == PRUNED:
            raise InvalidInput(f"the build {release.build_id} of {release_id} was pruned already")
        found = uow.releases.set_pinned(app, release_id, pinned)
        audit.record(uow, "release.pin" if pinned else "release.unpin", app, release_id, "")
    return found


def ensure_build_kept(uow: UnitOfWork, release: Release) -> None:
    """Refuse to run a release whose build was pruned (before anything is written)."""
    if release.build_id and uow.builds.get(release.app, release.build_id).status == PRUNED:
        raise InvalidInput(
            f"the build {release.build_id} of {release.id} was pruned (`shipmate builds prune`): "
            "deploy its source again; `shipmate releases pin` keeps a release's build"
        )


def prune(ctx: Context, app: str, *, dry_run: bool) -> list[Prunable]:
    """The builds no kept release uses, removed unless `dry_run`: marked pruned in one
    transaction with the app locked (no promotion can start meanwhile), then deleted."""
    with ctx.store.unit_of_work() as uow:
        found = uow.apps.lock(app)
        if not dry_run:
            ensure_changeable(found)
        if found.keep is None:
            return []
        doomed = _prunable(ctx, uow, found)
        if not dry_run:
            for item in doomed:
                uow.builds.update(item.build_id, status=PRUNED)
            if doomed:
                freed = sum(item.size for item in doomed)
                names = " ".join(item.build_id for item in doomed)
                audit.record(uow, "builds.prune", app, app, f"{names} ({freed} bytes)")
    if not dry_run:
        for item in doomed:
            shutil.rmtree(ctx.settings.builds_dir / item.build_id, ignore_errors=True)
    return doomed


def _prunable(ctx: Context, uow: UnitOfWork, app: App) -> list[Prunable]:
    assert app.keep is not None
    every = uow.releases.build_uses(app.name)  # newest first
    kept = {r for r, _, _ in every[: app.keep]} | {r for r, _, pinned in every if pinned}
    if app.release_id is not None:
        kept.add(app.release_id)
        previous = _previous(uow, app.release_id)
        if previous is not None:
            kept.add(previous)
    needed = {build for r, build, _ in every if r in kept}
    users: dict[str, list[str]] = {}
    for release_id, build_id, _ in reversed(every):
        if build_id is not None:
            users.setdefault(build_id, []).append(release_id)
    doomed = []
    for build_id, releases in users.items():
        if build_id in needed or uow.builds.get(app.name, build_id).status != "complete":
            continue
        directory = ctx.settings.builds_dir / build_id
        doomed.append(Prunable(build_id, tuple(releases), disk_usage(directory)))
    return doomed


def _previous(uow: UnitOfWork, active_id: str) -> str | None:
    """The release that was active before `active_id`: what its last promotion replaced."""
    for promotion in reversed(uow.promotions.of_release(active_id)):
        if promotion.previous_release_id is not None:
            return promotion.previous_release_id
    return None


def disk_usage(directory: Path) -> int:
    """Bytes of disk the tree uses, as `du -s -B1` counts them (blocks, each inode once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(directory):
        for name in (".", *dirs, *files):
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total
