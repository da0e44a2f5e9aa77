"""A throwaway PostgreSQL server on a loopback port, for the tests and the benchmarks.

`initdb` into a temporary directory, `pg_ctl start` on a free 127.0.0.1 port (no Unix socket
outside the data directory), one database per test, `pg_ctl stop` and the directory removed at
the end. initdb refuses to run as root, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

# Set by .ci/run: there a missing PostgreSQL is a failure, not a skip.
REQUIRE_ENV = "SHIPMATE_REQUIRE_POSTGRES"
# An already running server to use instead of starting one (a superuser URL of any database).
EXTERNAL_ENV = "SHIPMATE_TEST_POSTGRES_URL"
USER = "shipmate"


def find_bin_dir() -> Path | None:
    """The directory of initdb/pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A PostgreSQL server that accepts `USER` without a password on 127.0.0.1."""

    host: str
    port: int
    user: str
    data_dir: Path | None = None  # None: not ours to stop
    bin_dir: Path | None = None
    admin_db: str = "postgres"

    @property
    def admin_dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.admin_db}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.data_dir is None or self.bin_dir is None:
            return
        # pg_ctl stops the postmaster whose PID is in this data directory's postmaster.pid.
        _as_owner([str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast"])
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


class StartError(RuntimeError):
    pass


def _as_owner(argv: list[str]) -> None:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        name = Path(argv[argv.index("--") + 1] if "--" in argv else argv[0]).name
        raise StartError(f"{name} failed: {(done.stderr or done.stdout).strip()}")


def start(durable: bool = False) -> Server:
    """Start a server in a new temporary directory.

    Raises LookupError when PostgreSQL is not installed. `durable=False` turns off fsync:
    right for tests, which never crash the database server itself; benchmarks want True.
    """
    external = os.environ.get(EXTERNAL_ENV)
    if external:
        info = psycopg.conninfo.conninfo_to_dict(
            external.replace("postgresql+psycopg://", "postgresql://")
        )
        return Server(
            host=str(info.get("host", "127.0.0.1")),
            port=int(info.get("port", 5432)),
            user=str(info.get("user", "postgres")),
            admin_db=str(info.get("dbname", "postgres")),
        )
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise LookupError(
            "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql): "
            "`apt-get install postgresql`, or set SHIPMATE_TEST_POSTGRES_URL"
        )
    root = Path(tempfile.mkdtemp(prefix="shipmate-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    try:
        _as_owner(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
                *([] if durable else ["--no-sync"]),
            ]
        )
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={root}",
            "-c max_connections=200",
        ]
        if not durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        for attempt in range(5):
            port = _free_port()
            try:
                _as_owner(
                    [
                        str(bin_dir / "pg_ctl"),
                        "start",
                        "-D",
                        str(data),
                        "-w",
                        "-t",
                        "60",
                        "-l",
                        str(root / "server.log"),
                        "-o",
                        " ".join([f"-p {port}", *options]),
                    ]
                )
                break
            except StartError:
                if attempt == 4:  # the port may have been taken in between: try another
                    raise
        return Server("127.0.0.1", port, USER, data_dir=data, bin_dir=bin_dir)
    except BaseException:
        with contextlib.suppress(Exception):
            _as_owner([str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate"])
        shutil.rmtree(root, ignore_errors=True)
        raise
