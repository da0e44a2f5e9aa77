"""Platform events of apps, and the audit trail of who changed what."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from shipmate.domain.actor import current_actor
from shipmate.domain.humanize import utcnow
from shipmate.store.records import Repository, audit_of, event_of
from shipmate.store.tables import AuditRow, EventRow
from shipmate.structs import AuditEntry, Event


class SqlEvents(Repository):
    def add(
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
        return event_of(row)

    def list(
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
        return [event_of(r) for r in rows]


class SqlAudit(Repository):
    def add(
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
        return audit_of(row)

    def list(self, app: str | None = None, limit: int = 100) -> list[AuditEntry]:
        query = select(AuditRow)
        if app is not None:
            query = query.where(AuditRow.app == app)
        rows = self.session.scalars(query.order_by(AuditRow.id.desc()).limit(limit))
        return [audit_of(r) for r in rows]
