"""Engine set-up and schema migration for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import sessionmaker

from shipmate.domain.errors import ShipmateError
from shipmate.store.crypto import Keyring
from shipmate.store.keys import StoreKeys
from shipmate.store.unit_of_work import SqlUnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3, the PostgreSQL driver shipmate ships."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def safe_url(url: str) -> str:
    """The URL for messages: never the password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ShipmateError(
            f"SHIPMATE_DATABASE_URL is not a database URL: {url!r}; use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DATABASE"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ShipmateError(
            f"unsupported state store {safe_url(url)}: use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DATABASE"
        )
    # READ COMMITTED (PostgreSQL's default): what needs serializing takes a row lock on the
    # app (apps.lock), which is narrower than SERIALIZABLE and never needs retries.
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def _configure_sqlite(engine: Engine) -> None:
    # WAL lets readers run beside the single writer; IMMEDIATE makes every transaction
    # take the write lock at BEGIN, so read-then-write sequences cannot interleave.
    # synchronous=FULL: a commit reported to a user survives a power cut too, not only a
    # crash of the rack (which NORMAL already survives).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


# Any constant: racks sharing one PostgreSQL database migrate one at a time.
_MIGRATION_LOCK = 0x5348495000000001


@dataclass(frozen=True)
class Migration:
    before: str | None  # None: an empty database
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> list[str]:
    """Every revision this code knows, oldest first."""
    script = ScriptDirectory.from_config(_alembic_config())
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def current_revision(engine: Engine) -> str | None:
    with _connected(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _connected(engine: Engine, begin: bool = False) -> Iterator[Connection]:
    try:
        conn = engine.connect()
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ShipmateError(
            f"cannot open the state store {safe_url(str(engine.url))}: {reason}"
        ) from None
    with conn:
        if not begin:
            yield conn
            return
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Alembic rebuilds a SQLite table to alter it (copy, drop, rename), which foreign
            # keys pointing at it would forbid; they are checked as a whole before the commit.
            # The pragma only takes effect outside a transaction: hence the raw connection.
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise ShipmateError(
                            f"the migration would break {len(broken)} references between rows "
                            f"(first: {tuple(broken[0])}); nothing was changed"
                        )
        finally:
            if sqlite and raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def check_known(current: str | None, target: str) -> None:
    """Refuse a database newer than this code, or a target revision it does not know."""
    known = known_revisions()
    if current is not None and current not in known:
        raise ShipmateError(
            f"the database is at schema revision {current}, newer than this shipmate "
            f"(which knows up to {head_revision()}); upgrade shipmate"
        )
    if target not in known:
        raise ShipmateError(
            f"unknown schema revision {target}: this shipmate knows {', '.join(known)}"
        )


def migrate(engine: Engine, target: str | None = None) -> Migration:
    """Move the schema to `target` (default: the newest revision this code knows).

    Runs in one transaction (both backends have transactional DDL), so a migration that fails
    half-way leaves the schema as it was.
    """
    cfg = _alembic_config()
    target = target or head_revision()
    known = known_revisions()
    with _connected(engine, begin=True) as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        check_known(before, target)
        cfg.attributes["connection"] = conn
        if before is None or known.index(target) >= known.index(before):
            command.upgrade(cfg, target)
        else:
            _downgrade(cfg, before, target)
        after = MigrationContext.configure(conn).get_current_revision()
    return Migration(before, after)


def _downgrade(cfg: Config, current: str, target: str) -> None:
    # A migration whose downgrade would lose data raises NotImplementedError saying why;
    # the enclosing transaction undoes the steps already taken.
    try:
        command.downgrade(cfg, target)
    except NotImplementedError as exc:
        raise ShipmateError(
            f"cannot downgrade the state store from {current} to {target}: {exc}"
        ) from None


class Store:
    """The source of truth (shipmate.services.ports.StorePort): every change goes through one
    unit of work."""

    def __init__(self, url: str, keys: StoreKeys | None = None) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # The rack's key ring (`StoreKeys.load`); without one, a key of this process only.
        self.keys = keys or StoreKeys(Keyring.ephemeral())

    def migrate(self, target: str | None = None) -> Migration:
        return migrate(self.engine, target)

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._sessions, self.keys.keyring)

    def close(self) -> None:
        self.engine.dispose()
