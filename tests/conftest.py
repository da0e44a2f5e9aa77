"""Fixtures shared by every test directory: the state-store backends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import postgres
from tests.backends import BACKENDS, backend_of, database, start_server_or_skip


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.Server]:
    server = start_server_or_skip()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database for this test, on each backend in turn."""
    with database(request, request.param, tmp_path) as url:
        yield url


_outcomes: dict[str, Counter[str]] = {backend: Counter() for backend in BACKENDS}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    backend = backend_of(report.nodeid)
    if backend is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _outcomes[backend][report.outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # So that a CI log says plainly that both backends ran.
    parts = []
    for backend, counts in _outcomes.items():
        if counts:
            parts.append(f"{backend}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    if parts:
        terminalreporter.write_line("state store backends: " + "; ".join(parts))
