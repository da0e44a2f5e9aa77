"""Domains claimed by hand and the certificates of the rack (keys sealed like environments)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shipmate.domain.errors import Conflict
from shipmate.domain.humanize import utcnow
from shipmate.store.crypto import Keyring
from shipmate.store.records import Repository
from shipmate.store.tables import CertRow, DomainRow
from shipmate.structs import Cert, Domain


def _domain(row: DomainRow) -> Domain:
    return Domain(row.name, row.app, row.service, row.created_at)


class SqlDomains(Repository):
    def add(self, name: str, app: str, service: str) -> Domain:
        row = DomainRow(name=name, app=app, service=service, created_at=utcnow())
        self.session.add(row)
        try:
            self.session.flush()
        except IntegrityError:  # claimed by a concurrent transaction since the check
            raise Conflict(f"domain {name} is already claimed") from None
        return _domain(row)

    def find(self, name: str) -> Domain | None:
        row = self.session.get(DomainRow, name)
        return None if row is None else _domain(row)

    def remove(self, name: str) -> None:
        row = self.session.get(DomainRow, name)
        if row is not None:
            self.session.delete(row)
            self.session.flush()

    def list(self, app: str | None = None) -> list[Domain]:
        query = select(DomainRow).order_by(DomainRow.name)
        if app is not None:
            query = query.where(DomainRow.app == app)
        return [_domain(row) for row in self.session.scalars(query)]


class SqlCerts(Repository):
    def __init__(self, session: Session, keyring: Keyring) -> None:
        super().__init__(session)
        self.keyring = keyring

    def put(
        self, name: str, cert_pem: str, key_pem: str, issuer: str, not_after: datetime, source: str
    ) -> Cert:
        row = self.session.get(CertRow, name)
        if row is None:
            row = CertRow(name=name)
            self.session.add(row)
        row.cert_pem = cert_pem
        row.key_sealed = self.keyring.encrypt(key_pem)
        row.issuer = issuer[:200]
        row.not_after = not_after
        row.source = source
        row.updated_at = utcnow()
        self.session.flush()
        return self._cert(row)

    def _cert(self, row: CertRow) -> Cert:
        key = self.keyring.decrypt(row.key_sealed, f"the key of certificate {row.name}")
        return Cert(
            row.name, row.cert_pem, key, row.issuer, row.not_after, row.source, row.updated_at
        )

    def find(self, name: str) -> Cert | None:
        row = self.session.get(CertRow, name)
        return None if row is None else self._cert(row)

    def remove(self, name: str) -> None:
        row = self.session.get(CertRow, name)
        if row is not None:
            self.session.delete(row)
            self.session.flush()

    def list(self) -> list[Cert]:
        rows = self.session.scalars(select(CertRow).order_by(CertRow.name))
        return [self._cert(row) for row in rows]
