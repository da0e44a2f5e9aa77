"""Apps, and the process counts (formation) `scale` sets for them."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from shipmate.domain.errors import Conflict, NotFound
from shipmate.domain.humanize import utcnow
from shipmate.store.records import Repository, app_of
from shipmate.store.tables import (
    AppRow,
    BuildRow,
    DomainRow,
    EventRow,
    FormationRow,
    PromotionRow,
    ReleaseRow,
)
from shipmate.structs import App


class SqlApps(Repository):
    def add(self, name: str) -> App:
        row = AppRow(name=name, status="running", release_id=None, created_at=utcnow())
        self.session.add(row)
        try:
            self.session.flush()
        except IntegrityError:  # PostgreSQL: created by a concurrent transaction since a check
            raise Conflict(f"app {name} already exists") from None
        return app_of(row)

    def find(self, name: str) -> App | None:
        row = self.session.get(AppRow, name)
        return None if row is None else app_of(row)

    def get(self, name: str) -> App:
        app = self.find(name)
        if app is None:
            raise NotFound(f"no such app: {name}")
        return app

    def lock(self, name: str) -> App:
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
        return app_of(row)

    def list(self) -> list[App]:
        rows = self.session.scalars(select(AppRow).order_by(AppRow.created_at.desc()))
        return [app_of(r) for r in rows]

    def update(self, name: str, *, status: str | None = None, release_id: str | None = None) -> App:
        row = self.session.get(AppRow, name)
        if row is None:
            raise NotFound(f"no such app: {name}")
        if status is not None:
            row.status = status
        if release_id is not None:
            row.release_id = release_id
        self.session.flush()
        return app_of(row)

    def set_keep(self, name: str, keep: int | None) -> App:
        row = self.session.get(AppRow, name)
        if row is None:
            raise NotFound(f"no such app: {name}")
        row.keep = keep
        self.session.flush()
        return app_of(row)

    def delete(self, name: str) -> None:
        for model in (EventRow, PromotionRow, ReleaseRow, BuildRow, FormationRow, DomainRow):
            self.session.execute(delete(model).where(model.app == name))
        self.session.execute(delete(AppRow).where(AppRow.name == name))


class SqlFormation(Repository):
    def get(self, app: str) -> dict[str, int]:
        rows = self.session.scalars(select(FormationRow).where(FormationRow.app == app))
        return {r.service: r.count for r in rows}

    def set(self, app: str, counts: dict[str, int]) -> None:
        for service, count in counts.items():
            row = self.session.get(FormationRow, (app, service))
            if row is None:
                self.session.add(FormationRow(app=app, service=service, count=count))
            else:
                row.count = count
        self.session.flush()
