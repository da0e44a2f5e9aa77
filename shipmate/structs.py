"""Plain records passed between the store, the use cases and the entrypoints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The promotion record is the domain's: it carries its state machine (typed states, app
# statuses, transitions), so the store returns what the server drives.
from shipmate.domain.promotion import Promotion as Promotion


@dataclass(frozen=True)
class App:
    name: str
    status: str
    release_id: str | None
    created_at: datetime
    keep: int | None = None  # releases whose builds are kept (None: every one)


@dataclass(frozen=True)
class Build:
    id: str
    app: str
    status: str  # created, running, complete, failed
    description: str
    manifest: str | None
    manifest_name: str | None
    release_id: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class Release:
    id: str
    app: str
    number: int
    build_id: str | None
    env: dict[str, str]
    manifest: str | None
    manifest_name: str | None
    description: str
    copied_from: str | None
    created_at: datetime
    created_by: str = ""  # name of the token that created it; "" before audit existed
    pinned: bool = False  # its build is never pruned


@dataclass(frozen=True)
class Event:
    id: int
    app: str
    promotion_id: str | None
    created_at: datetime
    runtime: str
    object: str
    message: str

    @property
    def source(self) -> str:
        return f"system/{self.runtime}/{self.object}"


@dataclass(frozen=True)
class Token:
    """An API token as stored: its hash, never the token itself."""

    name: str
    role: str  # viewer, deployer, admin
    hash: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    time: datetime
    actor: str  # token name, or "system" for the rack itself
    action: str
    app: str | None
    target: str
    detail: str


@dataclass(frozen=True)
class Domain:
    """A name claimed with `shipmate domains add` for a service of an app."""

    name: str
    app: str
    service: str
    created_at: datetime


@dataclass(frozen=True)
class Cert:
    """A certificate as stored; `key_pem` is the opened (unsealed) key."""

    name: str
    cert_pem: str
    key_pem: str
    issuer: str
    not_after: datetime
    source: str  # "import" or "acme"
    updated_at: datetime
