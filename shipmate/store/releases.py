"""Releases, whose environments are sealed with the key ring on the way in and opened on the
way out, here and nowhere else: the use cases never see ciphertext."""

from __future__ import annotations

import json

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shipmate.domain.actor import current_actor
from shipmate.domain.errors import NotFound
from shipmate.domain.humanize import utcnow
from shipmate.domain.ids import new_release_id
from shipmate.store.crypto import KEY_ENV, Keyring, SecretKeyError
from shipmate.store.records import Repository, env_what, release_of
from shipmate.store.tables import ReleaseRow
from shipmate.structs import Release

BATCH = 5000  # rows per statement of a bulk write


def next_number(session: Session, app: str) -> int:
    """The app's next release number: the caller holds the app's lock."""
    latest = session.scalar(select(func.max(ReleaseRow.number)).where(ReleaseRow.app == app))
    return (latest or 0) + 1


def seal(keyring: Keyring, env: dict[str, str]) -> str:
    return keyring.encrypt(json.dumps(env, sort_keys=True))


class SqlReleases(Repository):
    def __init__(self, session: Session, keyring: Keyring) -> None:
        super().__init__(session)
        self.keyring = keyring

    def add(
        self,
        app: str,
        build_id: str | None,
        env: dict[str, str],
        manifest: str | None,
        manifest_name: str | None,
        description: str,
        copied_from: str | None = None,
    ) -> Release:
        row = ReleaseRow(
            id=self._unused_id(ReleaseRow, new_release_id),
            app=app,
            number=next_number(self.session, app),
            build_id=build_id,
            env=seal(self.keyring, env),
            manifest=manifest,
            manifest_name=manifest_name,
            description=description,
            copied_from=copied_from,
            created_at=utcnow(),
            created_by=current_actor.get(),
        )
        self.session.add(row)
        self.session.flush()
        return release_of(row, self.keyring)

    def get(self, app: str, release_id: str) -> Release:
        row = self.session.get(ReleaseRow, release_id)
        if row is None or row.app != app:
            raise NotFound(f"no such release: {release_id} (app {app})")
        return release_of(row, self.keyring)

    def set_pinned(self, app: str, release_id: str, pinned: bool) -> Release:
        row = self.session.get(ReleaseRow, release_id)
        if row is None or row.app != app:
            raise NotFound(f"no such release: {release_id} (app {app})")
        row.pinned = pinned
        self.session.flush()
        return release_of(row, self.keyring)

    def latest(self, app: str) -> Release | None:
        row = self.session.scalars(
            select(ReleaseRow).where(ReleaseRow.app == app).order_by(ReleaseRow.number.desc())
        ).first()
        return None if row is None else release_of(row, self.keyring)

    def build_uses(self, app: str) -> list[tuple[str, str | None, bool]]:
        # Three columns of every release, no environment decrypted.
        rows = self.session.execute(
            select(ReleaseRow.id, ReleaseRow.build_id, ReleaseRow.pinned)
            .where(ReleaseRow.app == app)
            .order_by(ReleaseRow.number.desc())
        )
        return [(r.id, r.build_id, bool(r.pinned)) for r in rows]

    def list(self, app: str, limit: int = 20) -> list[Release]:
        rows = self.session.scalars(
            select(ReleaseRow)
            .where(ReleaseRow.app == app)
            .order_by(ReleaseRow.number.desc())
            .limit(limit)
        )
        return [release_of(r, self.keyring) for r in rows]


class SqlEnvironments(Repository):
    """The sealed environments as a whole: checking the key ring, re-sealing them."""

    def __init__(self, session: Session, keyring: Keyring) -> None:
        super().__init__(session)
        self.keyring = keyring

    def check(self) -> None:
        row = self.session.execute(
            select(ReleaseRow.id, ReleaseRow.env)
            .where(~ReleaseRow.env.startswith("{"))
            .order_by(ReleaseRow.created_at.desc())
            .limit(1)
        ).first()
        if row is None:
            return
        try:
            self.keyring.decrypt(row.env, env_what(row.id))
        except SecretKeyError as exc:
            raise SecretKeyError(
                f"{exc}; racks that share a database must share {KEY_ENV}"
            ) from None

    def reseal(self, only_plaintext: bool = False) -> int:
        query = select(ReleaseRow.id, ReleaseRow.env)
        if only_plaintext:
            query = query.where(ReleaseRow.env.startswith("{"))
        changes = [
            {"id": id_, "env": self.keyring.reencrypt(env, env_what(id_))}
            for id_, env in self.session.execute(query)
        ]
        for start in range(0, len(changes), BATCH):
            self.session.execute(update(ReleaseRow), changes[start : start + BATCH])
        return len(changes)
