"""API tokens, stored by the hash of their secret."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from shipmate.domain.actor import current_actor
from shipmate.domain.errors import NotFound
from shipmate.domain.humanize import utcnow
from shipmate.store.records import Repository, token_of
from shipmate.store.tables import TokenRow
from shipmate.structs import Token


class SqlTokens(Repository):
    def add(self, name: str, role: str, token_hash: str) -> Token:
        row = TokenRow(
            name=name,
            role=role,
            hash=token_hash,
            created_at=utcnow(),
            created_by=current_actor.get(),
        )
        self.session.add(row)
        self.session.flush()
        return token_of(row)

    def find(self, name: str) -> Token | None:
        row = self.session.scalars(select(TokenRow).where(TokenRow.name == name)).first()
        return None if row is None else token_of(row)

    def find_by_hash(self, token_hash: str) -> Token | None:
        row = self.session.scalars(select(TokenRow).where(TokenRow.hash == token_hash)).first()
        return None if row is None else token_of(row)

    def list(self) -> list[Token]:
        rows = self.session.scalars(select(TokenRow).order_by(TokenRow.created_at, TokenRow.id))
        return [token_of(r) for r in rows]

    def update(
        self,
        name: str,
        *,
        last_used_at: datetime | None = None,
        revoked_at: datetime | None = None,
    ) -> Token:
        row = self.session.scalars(select(TokenRow).where(TokenRow.name == name)).first()
        if row is None:
            raise NotFound(f"no such token: {name}")
        if last_used_at is not None:
            row.last_used_at = last_used_at
        if revoked_at is not None:
            row.revoked_at = revoked_at
        self.session.flush()
        return token_of(row)
