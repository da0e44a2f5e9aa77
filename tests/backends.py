"""The two state-store backends every store-using test runs on: SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import postgres

BACKENDS = ["sqlite", "postgresql"]
# A test id carries its backend: test_x[sqlite], test_y[postgresql-3].
_BACKEND_IN_ID = re.compile(r"\[(?:[^\]]*-)?(sqlite|postgresql)(?:-[^\]]*)?\]$")


def backend_of(nodeid: str) -> str | None:
    match = _BACKEND_IN_ID.search(nodeid)
    return match.group(1) if match else None


def postgres_server(request: pytest.FixtureRequest) -> postgres.Server:
    """The session's PostgreSQL server (started on first use); skips when there is none."""
    server: postgres.Server = request.getfixturevalue("postgres_server")
    return server


def start_server_or_skip() -> postgres.Server:
    try:
        return postgres.start()
    except LookupError as exc:
        if os.environ.get(postgres.REQUIRE_ENV):
            pytest.fail(f"{exc} ({postgres.REQUIRE_ENV} is set)", pytrace=False)
        pytest.skip(str(exc))


@contextmanager
def database(request: pytest.FixtureRequest, backend: str, directory: Path) -> Iterator[str]:
    """A URL of a new, empty database of `backend`, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'shipmate.db'}"
        return
    server = postgres_server(request)
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(url)
