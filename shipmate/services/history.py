"""Release history: what moving between two releases changes (`releases diff`), and every
promotion of an app with what it was (`releases history`)."""

from __future__ import annotations

from dataclasses import dataclass

from shipmate.domain.errors import InvalidInput
from shipmate.domain.promotion import State
from shipmate.domain.release_diff import EnvDiff, commit_of, manifest_diff
from shipmate.services.context import Context
from shipmate.services.ports import UnitOfWork
from shipmate.structs import Build, Promotion, Release


@dataclass(frozen=True)
class Side:
    release: Release
    build: Build | None
    active: bool

    @property
    def commit(self) -> str | None:
        return commit_of(self.build.description) if self.build is not None else None


@dataclass(frozen=True)
class ReleaseDiff:
    old: Side
    new: Side
    env: EnvDiff
    manifest: str  # unified diff, "" when the same
    # The release commands (migrations) run by the promotions of the releases after the older
    # of the two, up to the newer: what a move between them does not undo.
    release_commands: tuple[Promotion, ...]


def diff(ctx: Context, app: str, from_id: str, to_id: str | None, *, reveal: bool) -> ReleaseDiff:
    """`from_id` against `to_id` (default: the active release); values masked unless
    `reveal`, which the caller allows only to a role that may read them."""
    with ctx.store.unit_of_work() as uow:
        found = uow.apps.get(app)
        if to_id is None:
            if found.release_id is None:
                raise InvalidInput(f"app {app} has no active release: name the second release")
            to_id = found.release_id
        old = _side(uow, app, from_id, found.release_id)
        new = _side(uow, app, to_id, found.release_id)
        commands = _release_commands(uow, app, old.release, new.release)
    env = EnvDiff.of(old.release.env, new.release.env)
    return ReleaseDiff(
        old=old,
        new=new,
        env=env if reveal else env.masked(),
        manifest=manifest_diff(
            old.release.manifest,
            new.release.manifest,
            f"{old.release.id}/{old.release.manifest_name or 'shipmate.yml'}",
            f"{new.release.id}/{new.release.manifest_name or 'shipmate.yml'}",
        ),
        release_commands=commands,
    )


def _side(uow: UnitOfWork, app: str, release_id: str, active_id: str | None) -> Side:
    release = uow.releases.get(app, release_id)
    build = uow.builds.get(app, release.build_id) if release.build_id else None
    return Side(release, build, release.id == active_id)


def _release_commands(uow: UnitOfWork, app: str, a: Release, b: Release) -> tuple[Promotion, ...]:
    early, late = sorted((a, b), key=lambda r: r.number)
    if early.id == late.id:
        return ()
    numbers: dict[str, int] = {}
    ran = []
    for promotion in uow.promotions.release_commands_since(app, early.created_at):
        if promotion.release_id not in numbers:
            numbers[promotion.release_id] = uow.releases.get(app, promotion.release_id).number
        if early.number < numbers[promotion.release_id] <= late.number:
            ran.append(promotion)
    return tuple(ran)


@dataclass(frozen=True)
class Entry:
    promotion: Promotion
    action: str  # deploy, env, promote, rollback, scale, restart
    description: str  # of the promoted release
    outcome: str  # succeeded, reverted, failed, in progress


def promotions(ctx: Context, app: str, limit: int) -> list[Entry]:
    """The app's promotions, newest first, each with what it was and how it ended."""
    with ctx.store.unit_of_work() as uow:
        uow.apps.get(app)
        listed = uow.promotions.of_app(app, limit)
        releases = {r: uow.releases.get(app, r) for r in {p.release_id for p in listed}}
        made_by = {
            r.id: uow.builds.get(app, r.build_id).release_id if r.build_id else None
            for r in releases.values()
        }
        # of_release is oldest first: the first is the one that put the release out.
        firsts = {r: uow.promotions.of_release(r)[0].id for r in releases}
    return [
        Entry(
            p,
            _action(p, releases[p.release_id], made_by[p.release_id], firsts[p.release_id]),
            releases[p.release_id].description,
            _outcome(p),
        )
        for p in listed
    ]


def _action(p: Promotion, release: Release, built: str | None, first: str) -> str:
    if p.kind != "promote":
        return p.kind  # rollback, scale, restart
    if p.id == first and built == release.id:
        return "deploy"  # the first promotion of the release its build made
    if p.id == first and release.description.startswith("env "):
        return "env"
    return "promote"


def _outcome(p: Promotion) -> str:
    if p.finished_at is None:
        return "in progress"
    if p.state is State.RUNNING:
        return "succeeded"
    return "failed" if p.state is State.FAILURE else "reverted"
