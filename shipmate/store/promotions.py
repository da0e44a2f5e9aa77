"""Promotions: one row per attempt to make a release active, with its state history."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from shipmate.domain.actor import current_actor
from shipmate.domain.errors import NotFound
from shipmate.domain.humanize import utcnow
from shipmate.domain.ids import new_promotion_id
from shipmate.store.records import Repository, promotion_of
from shipmate.store.tables import PromotionRow
from shipmate.structs import Promotion


class SqlPromotions(Repository):
    def add(
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
        return promotion_of(row)

    def set_reason(self, promotion_id: str, reason: str) -> Promotion:
        row = self._row(promotion_id)
        row.reason = reason
        self.session.flush()
        return promotion_of(row)

    def get(self, app: str, promotion_id: str) -> Promotion:
        row = self.session.get(PromotionRow, promotion_id)
        if row is None or row.app != app:
            raise NotFound(f"no such promotion: {promotion_id} (app {app})")
        return promotion_of(row)

    def get_by_id(self, promotion_id: str) -> Promotion:
        return promotion_of(self._row(promotion_id))

    def _row(self, promotion_id: str) -> PromotionRow:
        row = self.session.get(PromotionRow, promotion_id)
        if row is None:
            raise NotFound(f"no such promotion: {promotion_id}")
        return row

    def update(
        self,
        promotion_id: str,
        state: str,
        reason: str | None = None,
        finished_at: datetime | None = None,
    ) -> Promotion:
        row = self._row(promotion_id)
        row.state = state
        row.history = f"{row.history},{state}" if row.history else state
        if reason is not None:
            row.reason = reason
        if finished_at is not None:
            row.finished_at = finished_at
        self.session.flush()
        return promotion_of(row)

    def record_release_command(self, promotion_id: str, command: str) -> None:
        self._row(promotion_id).release_command = command
        self.session.flush()

    def release_commands_since(self, app: str, since: datetime) -> list[Promotion]:
        rows = self.session.scalars(
            select(PromotionRow)
            .where(
                PromotionRow.app == app,
                PromotionRow.created_at > since,
                PromotionRow.release_command.is_not(None),
            )
            .order_by(PromotionRow.created_at)
        )
        return [promotion_of(r) for r in rows]

    def running(self, app: str) -> Promotion | None:
        row = self.session.scalars(
            select(PromotionRow)
            .where(PromotionRow.app == app, PromotionRow.finished_at.is_(None))
            .order_by(PromotionRow.created_at.desc())
        ).first()
        return None if row is None else promotion_of(row)

    def unfinished(self) -> list[Promotion]:
        rows = self.session.scalars(
            select(PromotionRow)
            .where(PromotionRow.finished_at.is_(None))
            .order_by(PromotionRow.created_at)
        )
        return [promotion_of(r) for r in rows]

    def of_app(self, app: str, limit: int) -> list[Promotion]:
        rows = self.session.scalars(
            select(PromotionRow)
            .where(PromotionRow.app == app)
            .order_by(PromotionRow.created_at.desc(), PromotionRow.id.desc())
            .limit(limit)
        )
        return [promotion_of(r) for r in rows]

    def of_release(self, release_id: str) -> list[Promotion]:
        rows = self.session.scalars(
            select(PromotionRow)
            .where(PromotionRow.release_id == release_id)
            .order_by(PromotionRow.created_at)
        )
        return [promotion_of(r) for r in rows]

    def last_of_releases(self, release_ids: Sequence[str]) -> dict[str, Promotion]:
        rows = self.session.scalars(
            select(PromotionRow)
            .where(PromotionRow.release_id.in_(list(release_ids)))
            .order_by(PromotionRow.created_at)
        )
        # Oldest first: the last row seen of each release is its latest promotion.
        latest = {row.release_id: row for row in rows}
        return {release_id: promotion_of(row) for release_id, row in latest.items()}
