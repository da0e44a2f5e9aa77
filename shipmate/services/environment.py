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
from shipmate.services import audit
from shipmate.services.apps import ensure_changeable
from shipmate.services.context import Context
from shipmate.structs import Release


@dataclass(frozen=True)
class EnvChange:
    release: Release | None  # None: nothing changed, no release was created
    env: dict[str, str]


def get_env(ctx: Context, app: str) -> dict[str, str]:
    with ctx.store.unit_of_work() as uow:
        uow.apps.get(app)
        latest = uow.releases.latest(app)
    return dict(latest.env) if latest else {}


def change_env(
    ctx: Context,
    app: str,
    assignments: list[str],
    unset: list[str],
    replace: bool = False,
) -> EnvChange:
    set_ = parse_assignments(assignments)
    keys = validate_keys(unset)
    # One transaction from read to write: two concurrent changes cannot fork the same parent.
    with ctx.store.unit_of_work() as uow:
        ensure_changeable(uow.apps.lock(app))
        latest = uow.releases.latest(app)
        old = dict(latest.env) if latest else {}
        new = apply_change(old, set_, keys, replace)
        check_size(new)
        description = describe_change(old, new)
        if description is None:
            return EnvChange(None, old)
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
    return EnvChange(release, new)
