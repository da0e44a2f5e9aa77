"""Fixtures of the router tests: a router on its own thread over a test's route table (each
module's `table` fixture), a client kept alive to it, and a router daemon's home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shipmate.router import lifecycle
from shipmate.router.home import Paths
from shipmate.router.table import RouteTable
from tests.router.test_router import HOST, RouterThread


@pytest.fixture(params=["asyncio", "uvloop"])
def router(request: pytest.FixtureRequest, table: RouteTable) -> Iterator[RouterThread]:
    running = RouterThread(table, request.param)
    yield running
    running.close()


@pytest.fixture
def client(router: RouterThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=router.router.url, headers={"Host": HOST}, timeout=10) as c:
        yield c


@pytest.fixture
def paths(tmp_path: Path) -> Iterator[Paths]:
    paths = Paths(tmp_path)
    try:
        yield paths
    finally:
        lifecycle.stop(paths)
