"""Builds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from shipmate.domain.errors import NotFound
from shipmate.domain.humanize import utcnow
from shipmate.domain.ids import new_build_id
from shipmate.store.records import Repository, build_of
from shipmate.store.tables import BuildRow
from shipmate.structs import Build


class SqlBuilds(Repository):
    def new_id(self) -> str:
        return self._unused_id(BuildRow, new_build_id)

    def add(
        self, app: str, description: str, manifest: str, manifest_name: str, build_id: str = ""
    ) -> Build:
        row = BuildRow(
            id=build_id or self.new_id(),
            app=app,
            status="created",
            description=description,
            manifest=manifest,
            manifest_name=manifest_name,
            created_at=utcnow(),
        )
        self.session.add(row)
        self.session.flush()
        return build_of(row)

    def get(self, app: str, build_id: str) -> Build:
        row = self.session.get(BuildRow, build_id)
        if row is None or row.app != app:
            raise NotFound(f"no such build: {build_id} (app {app})")
        return build_of(row)

    def update(
        self,
        build_id: str,
        *,
        status: str | None = None,
        release_id: str | None = None,
        error: str | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
    ) -> Build:
        row = self.session.get(BuildRow, build_id)
        if row is None:
            raise NotFound(f"no such build: {build_id}")
        if status is not None:
            row.status = status
        if release_id is not None:
            row.release_id = release_id
        if error is not None:
            row.error = error
        if started_at is not None:
            row.started_at = started_at
        if ended_at is not None:
            row.ended_at = ended_at
        self.session.flush()
        return build_of(row)

    def unfinished(self) -> list[Build]:
        rows = self.session.scalars(
            select(BuildRow).where(BuildRow.status.in_(("created", "running")))
        )
        return [build_of(r) for r in rows]

    def list(self, app: str, limit: int = 20) -> list[Build]:
        rows = self.session.scalars(
            select(BuildRow)
            .where(BuildRow.app == app)
            .order_by(BuildRow.created_at.desc(), BuildRow.id)
            .limit(limit)
        )
        return [build_of(r) for r in rows]
