"""Environment changes: each one is a new release of the latest build."""

from __future__ import annotations

from dataclasses import dataclass

from shipmate.domain.envs import (
    apply_change,
    check_size,
    describe_change,
    parse_assignments,
    validate_keys,
)
from shipmate.domain.promotion import fork_note
from shipmate.services import audit
from shipmate.services.apps import ensure_changeable
from shipmate.services.context import Context
from shipmate.services.ports import UnitOfWork
from shipmate.structs import Release


@dataclass(frozen=True)
class EnvChange:
    release: Release | None  # None: nothing changed, no release was created
    env: dict[str, str]
    note: str | None = None  # the change forked from a release that is not the active one


@dataclass(frozen=True)
class EnvView:
    env: dict[str, str]  # of the latest release: what the next change forks from
    note: str | None = None  # set when the latest release is not the active one


def get_env(ctx: Context, app: str) -> EnvView:
    with ctx.store.unit_of_work() as uow:
        uow.apps.get(app)
        latest = uow.releases.latest(app)
        note = _note(uow, app, latest)
    return EnvView(dict(latest.env) if latest else {}, note)


def _note(uow: UnitOfWork, app: str, latest: Release | None) -> str | None:
    """Changes fork from the latest release; say so when another release is the one running.

    Before any release is active there is nothing else they could fork from: no note.
    """
    active = uow.apps.get(app).release_id
    if latest is None or active is None or latest.id == active:
        return None
    return fork_note(latest.id, active, uow.promotions.of_release(latest.id))


def change_env(
    ctx: Context,
    app: str,
    assignments: list[str],
    unset: list[str],
    replace: bool = False,
    base: str | None = None,
) -> EnvChange:
    """A release with the change, from the latest release, or from `base` (a change based on
    that release: its build and its environment, whatever came after)."""
    set_ = parse_assignments(assignments)
    keys = validate_keys(unset)
    # One transaction from read to write: two concurrent changes cannot fork the same parent.
    with ctx.store.unit_of_work() as uow:
        ensure_changeable(uow.apps.lock(app))
        latest = uow.releases.latest(app) if base is None else uow.releases.get(app, base)
        old = dict(latest.env) if latest else {}
        new = apply_change(old, set_, keys, replace)
        check_size(new)
        # Based on a release by name: no surprise to tell of.
        note = _note(uow, app, latest) if base is None else None
        description = describe_change(old, new)
        if description is None:
            return EnvChange(None, old, note)
        if base is not None:
            description += f" from {base}"
        release = uow.releases.add(
            app,
            latest.build_id if latest else None,
            new,
            latest.manifest if latest else None,
            latest.manifest_name if latest else None,
            description,
        )
        # Keys only, as in the release description: values never reach the audit trail.
        audit.record(uow, "env.change", app, release.id, description)
    return EnvChange(release, new, note)
