"""Queries and writes of the state store, all inside one caller-owned transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from shipmate.domain.actor import current_actor
from shipmate.domain.errors import NotFound
from shipmate.domain.humanize import utcnow
from shipmate.domain.ids import new_build_id, new_promotion_id, new_release_id
from shipmate.store.crypto import Keyring
from shipmate.store.tables import (
    AppRow,
    AuditRow,
    BuildRow,
    EventRow,
    FormationRow,
    PromotionRow,
    ReleaseRow,
    TokenRow,
)
from shipmate.structs import App, AuditEntry, Build, Event, Promotion, Release, Token


def _app(row: AppRow) -> App:
    return App(row.name, row.status, row.release_id, row.created_at)


def _build(row: BuildRow) -> Build:
    return Build(
        row.id,
        row.app,
        row.status,
        row.description,
        row.manifest,
        row.manifest_name,
        row.release_id,
        row.error,
        row.created_at,
        row.started_at,
        row.ended_at,
    )


def _release(row: ReleaseRow, keyring: Keyring) -> Release:
    return Release(
        row.id,
        row.app,
        row.number,
        row.build_id,
        json.loads(keyring.decrypt(row.env, f"the environment of release {row.id}")),
        row.manifest,
        row.manifest_name,
        row.description,
        row.copied_from,
        row.created_at,
        row.created_by or "",
    )


def _promotion(row: PromotionRow) -> Promotion:
    return Promotion(
        row.id,
        row.app,
        row.release_id,
        row.previous_release_id,
        row.kind,
        row.state,
        row.reason,
        row.created_at,
        row.finished_at,
        [s for s in row.history.split(",") if s],
        row.created_by or "",
        json.loads(row.options) if row.options else {},
        row.release_command,
    )


def _token(row: TokenRow) -> Token:
    return Token(
        row.name,
        row.role,
        row.hash,
        row.created_at,
        row.created_by,
        row.revoked_at,
        row.last_used_at,
    )


def _audit(row: AuditRow) -> AuditEntry:
    return AuditEntry(row.id, row.time, row.actor, row.action, row.app, row.target, row.detail)


def _event(row: EventRow) -> Event:
    return Event(
        row.id, row.app, row.promotion_id, row.created_at, row.runtime, row.object, row.message
    )


@dataclass(frozen=True)
class NewRelease:
    build_id: str | None
    env: dict[str, str]
    manifest: str | None
    manifest_name: str | None
    description: str
    copied_from: str | None = None


_BULK_BATCH = 5000


class Tx:
    def __init__(self, session: Session, keyring: Keyring | None = None) -> None:
        self.session = session
        # Release environments are sealed on the way in and opened on the way out, here
        # and nowhere else: the use cases never see ciphertext.
        self.keyring = keyring or Keyring.ephemeral()

    def _unused_id(self, model: type[Any], make: Callable[[], str]) -> str:
        # Random IDs: a collision is astronomically rare, but an ID is never reused.
        while True:
            candidate = make()
            if self.session.get(model, candidate) is None:
                return candidate

    # apps
    def create_app(self, name: str) -> App:
        row = AppRow(name=name, status="running", release_id=None, created_at=utcnow())
        self.session.add(row)
        self.session.flush()
        return _app(row)

    def find_app(self, name: str) -> App | None:
        row = self.session.get(AppRow, name)
        return None if row is None else _app(row)

    def get_app(self, name: str) -> App:
        app = self.find_app(name)
        if app is None:
            raise NotFound(f"no such app: {name}")
        return app

    def lock_app(self, name: str) -> App:
        """The app, locked until this transaction ends.

        Every transaction that forks or activates a release of an app takes this lock first, so
        those of one app run one at a time while other apps go on. On PostgreSQL it is a row
        lock (FOR NO KEY UPDATE: inserts that only reference the app are not blocked); SQLite
        takes its database-wide write lock at BEGIN IMMEDIATE already.
        """
        row = self.session.scalars(
            select(AppRow)
            .where(AppRow.name == name)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        ).first()
        if row is None:
            raise NotFound(f"no such app: {name}")
        return _app(row)

    def list_apps(self) -> list[App]:
        rows = self.session.scalars(select(AppRow).order_by(AppRow.created_at.desc()))
        return [_app(r) for r in rows]

    def update_app(self, name: str, **fields: Any) -> App:
        row = self.session.get(AppRow, name)
        if row is None:
            raise NotFound(f"no such app: {name}")
        for key, value in fields.items():
            setattr(row, key, value)
        self.session.flush()
        return _app(row)

    def delete_app(self, name: str) -> None:
        for model in (EventRow, PromotionRow, ReleaseRow, BuildRow, FormationRow):
            self.session.execute(delete(model).where(model.app == name))
        self.session.execute(delete(AppRow).where(AppRow.name == name))

    # builds
    def create_build(
        self, app: str, description: str, manifest: str, manifest_name: str, build_id: str = ""
    ) -> Build:
        row = BuildRow(
            id=build_id or self._unused_id(BuildRow, new_build_id),
            app=app,
            status="created",
            description=description,
            manifest=manifest,
            manifest_name=manifest_name,
            created_at=utcnow(),
        )
        self.session.add(row)
        self.session.flush()
        return _build(row)

    def new_build_id(self) -> str:
        return self._unused_id(BuildRow, new_build_id)

    def get_build(self, app: str, build_id: str) -> Build:
        row = self.session.get(BuildRow, build_id)
        if row is None or row.app != app:
            raise NotFound(f"no such build: {build_id} (app {app})")
        return _build(row)

    def update_build(self, build_id: str, **fields: Any) -> Build:
        row = self.session.get(BuildRow, build_id)
        if row is None:
            raise NotFound(f"no such build: {build_id}")
        for key, value in fields.items():
            setattr(row, key, value)
        self.session.flush()
        return _build(row)

    def list_builds(self, app: str, limit: int = 20) -> list[Build]:
        rows = self.session.scalars(
            select(BuildRow)
            .where(BuildRow.app == app)
            .order_by(BuildRow.created_at.desc(), BuildRow.id)
            .limit(limit)
        )
        return [_build(r) for r in rows]

    def unfinished_builds(self) -> list[Build]:
        rows = self.session.scalars(
            select(BuildRow).where(BuildRow.status.in_(("created", "running")))
        )
        return [_build(r) for r in rows]

    # releases
    def create_release(
        self,
        app: str,
        build_id: str | None,
        env: dict[str, str],
        manifest: str | None,
        manifest_name: str | None,
        description: str,
        copied_from: str | None = None,
    ) -> Release:
        number = (
            self.session.scalar(select(func.max(ReleaseRow.number)).where(ReleaseRow.app == app))
            or 0
        ) + 1
        row = ReleaseRow(
            id=self._unused_id(ReleaseRow, new_release_id),
            app=app,
            number=number,
            build_id=build_id,
            env=self.keyring.encrypt(json.dumps(env, sort_keys=True)),
            manifest=manifest,
            manifest_name=manifest_name,
            description=description,
            copied_from=copied_from,
            created_at=utcnow(),
            created_by=current_actor.get(),
        )
        self.session.add(row)
        self.session.flush()
        return _release(row, self.keyring)

    def create_releases_bulk(self, app: str, releases: Sequence[NewRelease]) -> list[str]:
        """Insert many releases after the latest, in order, in few statements; returns their ids.

        For imports and benchmarks. The caller holds `lock_app(app)`.
        """
        first = (
            self.session.scalar(select(func.max(ReleaseRow.number)).where(ReleaseRow.app == app))
            or 0
        ) + 1
        ids: list[str] = []
        for start in range(0, len(releases), _BULK_BATCH):
            batch = releases[start : start + _BULK_BATCH]
            fresh = {new_release_id() for _ in range(len(batch) * 2)}
            taken = self.session.scalars(select(ReleaseRow.id).where(ReleaseRow.id.in_(fresh)))
            batch_ids = sorted(fresh - set(taken) - set(ids))[: len(batch)]
            if len(batch_ids) < len(batch):  # astronomically unlikely: just draw again
                return ids + self.create_releases_bulk(app, releases[start:])
            now = utcnow()
            self.session.execute(
                insert(ReleaseRow),
                [
                    {
                        "id": release_id,
                        "app": app,
                        "number": first + start + i,
                        "build_id": new.build_id,
                        "env": self.keyring.encrypt(json.dumps(new.env, sort_keys=True)),
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

    def get_release(self, app: str, release_id: str) -> Release:
        row = self.session.get(ReleaseRow, release_id)
        if row is None or row.app != app:
            raise NotFound(f"no such release: {release_id} (app {app})")
        return _release(row, self.keyring)

    def latest_release(self, app: str) -> Release | None:
        row = self.session.scalars(
            select(ReleaseRow).where(ReleaseRow.app == app).order_by(ReleaseRow.number.desc())
        ).first()
        return None if row is None else _release(row, self.keyring)

    def list_releases(self, app: str, limit: int = 20) -> list[Release]:
        rows = self.session.scalars(
            select(ReleaseRow)
            .where(ReleaseRow.app == app)
            .order_by(ReleaseRow.number.desc())
            .limit(limit)
        )
        return [_release(r, self.keyring) for r in rows]

    # promotions
    def create_promotion(
        self,
        app: str,
        release_id: str,
        previous_release_id: str | None,
        kind: str,
        state: str,
        options: dict[str, Any] | None = None,
    ) -> Promotion:
        row = PromotionRow(
            options=json.dumps(options, sort_keys=True) if options else None,
            id=self._unused_id(PromotionRow, new_promotion_id),
            app=app,
            release_id=release_id,
            previous_release_id=previous_release_id,
            kind=kind,
            state=state,
            history=state,
            created_at=utcnow(),
            created_by=current_actor.get(),
        )
        self.session.add(row)
        self.session.flush()
        return _promotion(row)

    def get_promotion(self, app: str, promotion_id: str) -> Promotion:
        row = self.session.get(PromotionRow, promotion_id)
        if row is None or row.app != app:
            raise NotFound(f"no such promotion: {promotion_id} (app {app})")
        return _promotion(row)

    def record_release_command(self, promotion_id: str, command: str) -> None:
        row = self.session.get(PromotionRow, promotion_id)
        if row is None:
            raise NotFound(f"no such promotion: {promotion_id}")
        row.release_command = command
        self.session.flush()

    def release_commands_since(self, app: str, since: datetime) -> list[Promotion]:
        """Promotions of the app after `since` that ran a release-phase command."""
        rows = self.session.scalars(
            select(PromotionRow)
            .where(
                PromotionRow.app == app,
                PromotionRow.created_at > since,
                PromotionRow.release_command.is_not(None),
            )
            .order_by(PromotionRow.created_at)
        )
        return [_promotion(r) for r in rows]

    # formation
    def formation(self, app: str) -> dict[str, int]:
        rows = self.session.scalars(select(FormationRow).where(FormationRow.app == app))
        return {r.service: r.count for r in rows}

    def set_formation(self, app: str, counts: dict[str, int]) -> None:
        for service, count in counts.items():
            row = self.session.get(FormationRow, (app, service))
            if row is None:
                self.session.add(FormationRow(app=app, service=service, count=count))
            else:
                row.count = count
        self.session.flush()

    def get_promotion_by_id(self, promotion_id: str) -> Promotion:
        row = self.session.get(PromotionRow, promotion_id)
        if row is None:
            raise NotFound(f"no such promotion: {promotion_id}")
        return _promotion(row)

    def update_promotion(
        self,
        promotion_id: str,
        state: str,
        reason: str | None = None,
        finished_at: datetime | None = None,
    ) -> Promotion:
        row = self.session.get(PromotionRow, promotion_id)
        if row is None:
            raise NotFound(f"no such promotion: {promotion_id}")
        row.state = state
        row.history = f"{row.history},{state}" if row.history else state
        if reason is not None:
            row.reason = reason
        if finished_at is not None:
            row.finished_at = finished_at
        self.session.flush()
        return _promotion(row)

    def running_promotion(self, app: str) -> Promotion | None:
        row = self.session.scalars(
            select(PromotionRow)
            .where(PromotionRow.app == app, PromotionRow.finished_at.is_(None))
            .order_by(PromotionRow.created_at.desc())
        ).first()
        return None if row is None else _promotion(row)

    def unfinished_promotions(self) -> list[Promotion]:
        rows = self.session.scalars(
            select(PromotionRow)
            .where(PromotionRow.finished_at.is_(None))
            .order_by(PromotionRow.created_at)
        )
        return [_promotion(r) for r in rows]

    def promotions_of_release(self, release_id: str) -> list[Promotion]:
        rows = self.session.scalars(
            select(PromotionRow)
            .where(PromotionRow.release_id == release_id)
            .order_by(PromotionRow.created_at)
        )
        return [_promotion(r) for r in rows]

    # events
    def add_event(
        self, app: str, runtime: str, obj: str, message: str, promotion_id: str | None = None
    ) -> Event:
        row = EventRow(
            app=app,
            promotion_id=promotion_id,
            created_at=utcnow(),
            runtime=runtime,
            object=obj,
            message=message,
        )
        self.session.add(row)
        self.session.flush()
        return _event(row)

    def events(
        self,
        app: str,
        after_id: int = 0,
        since: datetime | None = None,
        promotion_id: str | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        query = select(EventRow).where(EventRow.app == app, EventRow.id > after_id)
        if since is not None:
            query = query.where(EventRow.created_at >= since)
        if promotion_id is not None:
            query = query.where(EventRow.promotion_id == promotion_id)
        rows = self.session.scalars(query.order_by(EventRow.id).limit(limit))
        return [_event(r) for r in rows]

    # tokens
    def create_token(self, name: str, role: str, token_hash: str) -> Token:
        row = TokenRow(
            name=name,
            role=role,
            hash=token_hash,
            created_at=utcnow(),
            created_by=current_actor.get(),
        )
        self.session.add(row)
        self.session.flush()
        return _token(row)

    def find_token(self, name: str) -> Token | None:
        row = self.session.scalars(select(TokenRow).where(TokenRow.name == name)).first()
        return None if row is None else _token(row)

    def find_token_by_hash(self, token_hash: str) -> Token | None:
        row = self.session.scalars(select(TokenRow).where(TokenRow.hash == token_hash)).first()
        return None if row is None else _token(row)

    def list_tokens(self) -> list[Token]:
        rows = self.session.scalars(select(TokenRow).order_by(TokenRow.created_at, TokenRow.id))
        return [_token(r) for r in rows]

    def update_token(self, name: str, **fields: Any) -> Token:
        row = self.session.scalars(select(TokenRow).where(TokenRow.name == name)).first()
        if row is None:
            raise NotFound(f"no such token: {name}")
        for key, value in fields.items():
            setattr(row, key, value)
        self.session.flush()
        return _token(row)

    # audit trail
    def add_audit(
        self, action: str, app: str | None = None, target: str = "", detail: str = ""
    ) -> AuditEntry:
        row = AuditRow(
            time=utcnow(),
            actor=current_actor.get(),
            action=action,
            app=app,
            target=target,
            detail=detail,
        )
        self.session.add(row)
        self.session.flush()
        return _audit(row)

    def audit(self, app: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Newest first."""
        query = select(AuditRow)
        if app is not None:
            query = query.where(AuditRow.app == app)
        rows = self.session.scalars(query.order_by(AuditRow.id.desc()).limit(limit))
        return [_audit(r) for r in rows]

    # secrets at rest
    def check_keyring(self) -> None:
        """Raise unless the key ring opens the newest sealed environment (if there is one)."""
        row = self.session.execute(
            select(ReleaseRow.id, ReleaseRow.env)
            .where(~ReleaseRow.env.startswith("{"))
            .order_by(ReleaseRow.created_at.desc())
            .limit(1)
        ).first()
        if row is not None:
            self.keyring.decrypt(row.env, f"the environment of release {row.id}")

    def reencrypt_envs(self, only_plaintext: bool = False) -> int:
        """Seal every release environment with the key ring's first key; returns how many.

        With `only_plaintext`, only environments written before encryption existed.
        """
        query = select(ReleaseRow.id, ReleaseRow.env)
        if only_plaintext:
            query = query.where(ReleaseRow.env.startswith("{"))
        changes = [
            {"id": id_, "env": self.keyring.reencrypt(env, f"the environment of release {id_}")}
            for id_, env in self.session.execute(query)
        ]
        for start in range(0, len(changes), _BULK_BATCH):
            self.session.execute(update(ReleaseRow), changes[start : start + _BULK_BATCH])
        return len(changes)
