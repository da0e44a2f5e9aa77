"""What the use cases need of the state store: one repository per aggregate, in a unit of work.

A unit of work is one transaction: every read and write made through its repositories is
committed together when the `with` block ends normally, and none of them when it raises.
What must not interleave (forking or activating a release of an app) starts with
`uow.apps.lock(app)`; see docs/architecture.md, "State store".

The store keeps the release environments sealed at rest with its key ring (`StorePort.keys`):
the repositories take and return them in the clear, so the use cases never see ciphertext.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from shipmate.structs import App, AuditEntry, Build, Cert, Domain, Event, Promotion, Release, Token


class AppRepository(Protocol):
    def add(self, name: str) -> App:
        """A new app; raises Conflict if one of that name exists."""

    def find(self, name: str) -> App | None: ...

    def get(self, name: str) -> App:
        """The app; raises NotFound."""

    def lock(self, name: str) -> App:
        """The app, locked against other units of work that lock it until this one ends."""

    def list(self) -> list[App]:
        """Newest first."""

    def update(self, name: str, *, status: str | None = None, release_id: str | None = None) -> App:
        """Change the fields given (None: unchanged)."""

    def set_keep(self, name: str, keep: int | None) -> App:
        """How many of the newest releases keep their builds; None: all."""

    def delete(self, name: str) -> None:
        """The app with its builds, releases, promotions, formation and events."""


class BuildRepository(Protocol):
    def new_id(self) -> str:
        """An id no build has."""

    def add(
        self, app: str, description: str, manifest: str, manifest_name: str, build_id: str = ""
    ) -> Build: ...

    def get(self, app: str, build_id: str) -> Build:
        """The build of that app; raises NotFound."""

    def update(
        self,
        build_id: str,
        *,
        status: str | None = None,
        release_id: str | None = None,
        error: str | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
    ) -> Build: ...

    def unfinished(self) -> list[Build]: ...

    def list(self, app: str, limit: int = 20) -> list[Build]:
        """Newest first."""


class ReleaseRepository(Protocol):
    def add(
        self,
        app: str,
        build_id: str | None,
        env: dict[str, str],
        manifest: str | None,
        manifest_name: str | None,
        description: str,
        copied_from: str | None = None,
    ) -> Release:
        """The app's next release (number: the latest one's plus one)."""

    def get(self, app: str, release_id: str) -> Release:
        """The release of that app; raises NotFound."""

    def latest(self, app: str) -> Release | None: ...

    def build_uses(self, app: str) -> list[tuple[str, str | None, bool]]:
        """(release, its build, pinned) of every release, newest first."""

    def set_pinned(self, app: str, release_id: str, pinned: bool) -> Release:
        """A pinned release's build is never pruned."""

    def list(self, app: str, limit: int = 20) -> list[Release]:
        """Newest first."""


class PromotionRepository(Protocol):
    def add(
        self,
        app: str,
        release_id: str,
        previous_release_id: str | None,
        kind: str,
        state: str,
        options: dict[str, Any] | None = None,
    ) -> Promotion: ...

    def get(self, app: str, promotion_id: str) -> Promotion:
        """The promotion of that app; raises NotFound."""

    def get_by_id(self, promotion_id: str) -> Promotion: ...

    def update(
        self,
        promotion_id: str,
        state: str,
        reason: str | None = None,
        finished_at: datetime | None = None,
    ) -> Promotion:
        """Move to `state` (appended to its history)."""

    def record_release_command(self, promotion_id: str, command: str) -> None: ...

    def release_commands_since(self, app: str, since: datetime) -> list[Promotion]:
        """Promotions of the app after `since` that ran a release-phase command, oldest first."""

    def set_reason(self, promotion_id: str, reason: str) -> Promotion:
        """Say why, after the fact (a watch that failed after the promotion succeeded)."""

    def running(self, app: str) -> Promotion | None:
        """The app's unfinished promotion, if any."""

    def unfinished(self) -> list[Promotion]:
        """Of every app, oldest first."""

    def of_app(self, app: str, limit: int) -> list[Promotion]:
        """The app's promotions, newest first."""

    def of_release(self, release_id: str) -> list[Promotion]:
        """Oldest first."""

    def last_of_releases(self, release_ids: Sequence[str]) -> dict[str, Promotion]:
        """The latest promotion of each release that has one, in one query."""


class FormationRepository(Protocol):
    """Process counts set by `scale`, overriding the manifest's."""

    def get(self, app: str) -> dict[str, int]: ...

    def set(self, app: str, counts: dict[str, int]) -> None: ...


class EventRepository(Protocol):
    def add(
        self, app: str, runtime: str, obj: str, message: str, promotion_id: str | None = None
    ) -> Event: ...

    def list(
        self,
        app: str,
        after_id: int = 0,
        since: datetime | None = None,
        promotion_id: str | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Oldest first."""


class TokenRepository(Protocol):
    def add(self, name: str, role: str, token_hash: str) -> Token: ...

    def find(self, name: str) -> Token | None: ...

    def find_by_hash(self, token_hash: str) -> Token | None: ...

    def list(self) -> list[Token]:
        """Oldest first."""

    def update(
        self,
        name: str,
        *,
        last_used_at: datetime | None = None,
        revoked_at: datetime | None = None,
    ) -> Token: ...


class AuditRepository(Protocol):
    def add(
        self, action: str, app: str | None = None, target: str = "", detail: str = ""
    ) -> AuditEntry:
        """An entry by the current actor (shipmate.domain.actor)."""

    def list(self, app: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Newest first."""


class SealedEnvironments(Protocol):
    """The release environments as stored: sealed with the key ring of the unit of work."""

    def check(self) -> None:
        """Raise unless the key ring opens the newest sealed environment (if there is one)."""

    def reseal(self, only_plaintext: bool = False) -> int:
        """Seal every environment with the key ring's first key; returns how many.

        With `only_plaintext`, only environments written before encryption existed.
        """


class DomainRepository(Protocol):
    def add(self, name: str, app: str, service: str) -> Domain:
        """Conflict when the name is claimed already."""

    def find(self, name: str) -> Domain | None: ...

    def remove(self, name: str) -> None: ...

    def list(self, app: str | None = None) -> list[Domain]:
        """By name."""


class CertRepository(Protocol):
    def put(
        self, name: str, cert_pem: str, key_pem: str, issuer: str, not_after: datetime, source: str
    ) -> Cert:
        """Add or replace; the key is sealed with the unit of work's key ring."""

    def find(self, name: str) -> Cert | None: ...

    def remove(self, name: str) -> None: ...

    def list(self) -> list[Cert]: ...


class UnitOfWork(Protocol):
    # Read-only properties, so that an implementation's own repository classes fit.
    @property
    def apps(self) -> AppRepository: ...
    @property
    def builds(self) -> BuildRepository: ...
    @property
    def releases(self) -> ReleaseRepository: ...
    @property
    def promotions(self) -> PromotionRepository: ...
    @property
    def formation(self) -> FormationRepository: ...
    @property
    def events(self) -> EventRepository: ...
    @property
    def tokens(self) -> TokenRepository: ...
    @property
    def audit(self) -> AuditRepository: ...
    @property
    def environments(self) -> SealedEnvironments: ...
    @property
    def domains(self) -> DomainRepository: ...
    @property
    def certs(self) -> CertRepository: ...

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Commit if the block ended normally, else roll back."""


class SecretKeys(Protocol):
    """The store's key ring: the first key seals, every key opens."""

    @property
    def source(self) -> str:
        """ "env", "file" or "ephemeral": where the keys come from (may the rack rewrite it?)."""

    @property
    def count(self) -> int: ...

    def describe(self) -> str:
        """Where the keys come from, for messages (SHIPMATE_SECRET_KEY, ...)."""

    def add_new(self) -> None:
        """Put a new key first, on disk too when the keys come from a file; the old ones stay."""

    def keep_first(self) -> None:
        """Drop every key but the first, on disk too when the keys come from a file."""


class StorePort(Protocol):
    """The state store as the Context holds it."""

    @property
    def keys(self) -> SecretKeys: ...

    def unit_of_work(self) -> UnitOfWork:
        """A new unit of work, to be used once as `with store.unit_of_work() as uow:`."""

    def close(self) -> None: ...
