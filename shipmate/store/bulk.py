"""Many releases in few statements: for benchmarks (bench/history.py) and the index tests.

Not a repository method: no use case writes releases in bulk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select

from shipmate.domain.actor import current_actor
from shipmate.domain.humanize import utcnow
from shipmate.domain.ids import new_release_id
from shipmate.store.releases import BATCH, next_number, seal
from shipmate.store.tables import ReleaseRow
from shipmate.store.unit_of_work import SqlUnitOfWork


@dataclass(frozen=True)
class NewRelease:
    build_id: str | None
    env: dict[str, str]
    manifest: str | None
    manifest_name: str | None
    description: str
    copied_from: str | None = None


def insert_releases(uow: SqlUnitOfWork, app: str, releases: Sequence[NewRelease]) -> list[str]:
    """Insert releases after the latest, in order, sealed like any release; returns their ids.

    The caller holds `uow.apps.lock(app)`.
    """
    session = uow.session
    first = next_number(session, app)
    ids: list[str] = []
    for start in range(0, len(releases), BATCH):
        batch = releases[start : start + BATCH]
        fresh = {new_release_id() for _ in range(len(batch) * 2)}
        taken = session.scalars(select(ReleaseRow.id).where(ReleaseRow.id.in_(fresh)))
        batch_ids = sorted(fresh - set(taken) - set(ids))[: len(batch)]
        if len(batch_ids) < len(batch):  # astronomically unlikely: just draw again
            return ids + insert_releases(uow, app, releases[start:])
        now = utcnow()
        session.execute(
            insert(ReleaseRow),
            [
                {
                    "id": release_id,
                    "app": app,
                    "number": first + start + i,
                    "build_id": new.build_id,
                    "env": seal(uow.keyring, new.env),
                    "created_by": current_actor.get(),
                    "manifest": new.manifest,
                    "manifest_name": new.manifest_name,
                    "description": new.description,
                    "copied_from": new.copied_from,
                    "created_at": now,
                }
                for i, (release_id, new) in enumerate(zip(batch_ids, batch, strict=True))
            ],
        )
        ids.extend(batch_ids)
    return ids
