"""SQLAlchemy tables of the state store. Changes here need an Alembic migration."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (SQLite has no time zones) and hands back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class AppRow(Base):
    __tablename__ = "apps"
    name: Mapped[str] = mapped_column(String(30), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    release_id: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # How many of the newest releases keep their builds (None: all); see services/retention.
    keep: Mapped[int | None] = mapped_column(Integer)


class BuildRow(Base):
    __tablename__ = "builds"
    id: Mapped[str] = mapped_column(String(10), primary_key=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.name", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    manifest: Mapped[str | None] = mapped_column(Text)
    manifest_name: Mapped[str | None] = mapped_column(String(32))
    release_id: Mapped[str | None] = mapped_column(String(10))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_builds_app_created", "app", "created_at"),)


class ReleaseRow(Base):
    __tablename__ = "releases"
    id: Mapped[str] = mapped_column(String(10), primary_key=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.name", ondelete="CASCADE"))
    # Per-app sequence number: orders releases exactly (timestamps can tie) and
    # makes "two releases forked from the same parent" detectable.
    number: Mapped[int] = mapped_column(Integer)
    build_id: Mapped[str | None] = mapped_column(ForeignKey("builds.id"))
    env: Mapped[str] = mapped_column(Text)  # JSON object
    manifest: Mapped[str | None] = mapped_column(Text)
    manifest_name: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    copied_from: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(64))  # token name; None before 0002
    # A pinned release's build is never pruned.
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (UniqueConstraint("app", "number", name="uq_releases_app_number"),)


class PromotionRow(Base):
    __tablename__ = "promotions"
    id: Mapped[str] = mapped_column(String(10), primary_key=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.name", ondelete="CASCADE"))
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"))
    previous_release_id: Mapped[str | None] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    history: Mapped[str] = mapped_column(Text, default="")  # comma-separated states
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(64))  # token name; None before 0002
    # JSON: {"counts": {service: n}} for a scale (made the app's formation on success),
    # {"restart": [service, ...]} for a restart of some services.
    options: Mapped[str | None] = mapped_column(Text)
    # The release-phase command this promotion ran, if any (rollbacks warn about these).
    release_command: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_promotions_app_created", "app", "created_at"),
        Index("ix_promotions_release", "release_id"),
    )


class EventRow(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.name", ondelete="CASCADE"))
    promotion_id: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    runtime: Mapped[str] = mapped_column(String(16))
    object: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_events_app_id", "app", "id"),
        Index("ix_events_promotion_id", "promotion_id", "id"),
    )


class TokenRow(Base):
    """An API token: only its SHA-256 is kept. Names are never reused, even once revoked,
    so an actor in the audit trail always means one token."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditRow(Base):
    """Who changed what. No foreign key to apps: the trail outlives a deleted app."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    app: Mapped[str | None] = mapped_column(String(30))
    target: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_audit_app_id", "app", "id"),)


class FormationRow(Base):
    """How many processes of each service an app runs, when scaled away from the manifest.

    Kept apart from releases (which are immutable), as Heroku keeps its formation.
    """

    __tablename__ = "formation"
    app: Mapped[str] = mapped_column(ForeignKey("apps.name", ondelete="CASCADE"), primary_key=True)
    service: Mapped[str] = mapped_column(String(30), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class DomainRow(Base):
    """A name an app claimed with `shipmate domains add` (the manifest's are read from the
    active release); one app per name, so the primary key refuses a second claim."""

    __tablename__ = "domains"
    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.name", ondelete="CASCADE"), index=True)
    service: Mapped[str] = mapped_column(String(30))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CertRow(Base):
    """A certificate for a domain: imported, or from ACME. The key is sealed with the store's
    key ring, as environments are."""

    __tablename__ = "certs"
    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    cert_pem: Mapped[str] = mapped_column(Text)
    key_sealed: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str] = mapped_column(String(200))
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(16))  # "import" or "acme"
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
