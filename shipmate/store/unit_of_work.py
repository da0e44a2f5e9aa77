"""One transaction of the store, its repositories as attributes (shipmate.services.ports)."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from shipmate.store.apps import SqlApps, SqlFormation
from shipmate.store.builds import SqlBuilds
from shipmate.store.crypto import Keyring
from shipmate.store.events import SqlAudit, SqlEvents
from shipmate.store.promotions import SqlPromotions
from shipmate.store.releases import SqlEnvironments, SqlReleases
from shipmate.store.sites import SqlCerts, SqlDomains
from shipmate.store.tokens import SqlTokens


class SqlUnitOfWork:
    """Commits when the `with` block ends normally, rolls back when it raises.

    SQLite: the transaction takes the database's write lock at its start (BEGIN IMMEDIATE,
    store/db.py), so read-then-write sequences never interleave. PostgreSQL: READ COMMITTED,
    and what must not interleave starts with `apps.lock(app)`.
    """

    apps: SqlApps
    builds: SqlBuilds
    releases: SqlReleases
    promotions: SqlPromotions
    formation: SqlFormation
    events: SqlEvents
    tokens: SqlTokens
    audit: SqlAudit
    environments: SqlEnvironments
    domains: SqlDomains
    certs: SqlCerts

    def __init__(self, sessions: sessionmaker[Session], keyring: Keyring) -> None:
        self._sessions = sessions
        # The key ring of the moment the unit of work is opened: a rotation replaces it as a
        # whole, never under a transaction that is using it.
        self.keyring = keyring

    def __enter__(self) -> SqlUnitOfWork:
        self.session = session = self._sessions()
        self._transaction: SessionTransaction = session.begin()
        self.apps = SqlApps(session)
        self.builds = SqlBuilds(session)
        self.releases = SqlReleases(session, self.keyring)
        self.promotions = SqlPromotions(session)
        self.formation = SqlFormation(session)
        self.events = SqlEvents(session)
        self.tokens = SqlTokens(session)
        self.audit = SqlAudit(session)
        self.environments = SqlEnvironments(session, self.keyring)
        self.domains = SqlDomains(session)
        self.certs = SqlCerts(session, self.keyring)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self._transaction.commit()
            else:
                self._transaction.rollback()
        finally:
            self.session.close()
