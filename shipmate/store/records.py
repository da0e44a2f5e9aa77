"""Rows of the tables as the records of shipmate.structs, and what every repository shares."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from shipmate.domain.promotion import State
from shipmate.store.crypto import Keyring
from shipmate.store.tables import (
    AppRow,
    AuditRow,
    BuildRow,
    EventRow,
    PromotionRow,
    ReleaseRow,
    TokenRow,
)
from shipmate.structs import App, AuditEntry, Build, Event, Promotion, Release, Token


class Repository:
    """Queries and writes of one aggregate inside the unit of work's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _unused_id(self, model: type[Any], make: Callable[[], str]) -> str:
        return unused_id(self.session, model, make)


def unused_id(session: Session, model: type[Any], make: Callable[[], str]) -> str:
    # Random IDs: a collision is astronomically rare, but an ID is never reused.
    while True:
        candidate = make()
        if session.get(model, candidate) is None:
            return candidate


def app_of(row: AppRow) -> App:
    return App(row.name, row.status, row.release_id, row.created_at, row.keep)


def build_of(row: BuildRow) -> Build:
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


def env_what(release_id: str) -> str:
    return f"the environment of release {release_id}"


def release_of(row: ReleaseRow, keyring: Keyring) -> Release:
    return Release(
        row.id,
        row.app,
        row.number,
        row.build_id,
        json.loads(keyring.decrypt(row.env, env_what(row.id))),
        row.manifest,
        row.manifest_name,
        row.description,
        row.copied_from,
        row.created_at,
        row.created_by or "",
        bool(row.pinned),
    )


def promotion_of(row: PromotionRow) -> Promotion:
    return Promotion(
        id=row.id,
        app=row.app,
        release_id=row.release_id,
        previous_release_id=row.previous_release_id,
        created_at=row.created_at,
        kind=row.kind,
        state=State(row.state),
        reason=row.reason,
        finished_at=row.finished_at,
        history=[State(s) for s in row.history.split(",") if s],
        created_by=row.created_by or "",
        options=json.loads(row.options) if row.options else {},
        release_command=row.release_command,
    )


def token_of(row: TokenRow) -> Token:
    return Token(
        row.name,
        row.role,
        row.hash,
        row.created_at,
        row.created_by,
        row.revoked_at,
        row.last_used_at,
    )


def audit_of(row: AuditRow) -> AuditEntry:
    return AuditEntry(row.id, row.time, row.actor, row.action, row.app, row.target, row.detail)


def event_of(row: EventRow) -> Event:
    return Event(
        row.id, row.app, row.promotion_id, row.created_at, row.runtime, row.object, row.message
    )
