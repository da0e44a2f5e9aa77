"""Release history stays fast as it grows: listing and rolling back use indexes, not scans."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from shipmate.store.bulk import NewRelease, insert_releases
from shipmate.store.db import Store

TABLES = ("apps", "builds", "releases", "promotions", "events")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.migrate()
    try:
        yield store
    finally:
        store.close()


def _full_scans(store: Store, statements: list[tuple[str, Any]]) -> list[str]:
    """The plan lines of `statements` that read a whole table."""
    found = []
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        if store.engine.dialect.name == "postgresql":
            # On tables this small a sequential scan is cheapest; forbid it to see whether
            # an index can serve the query at all.
            cur.execute("SET enable_seqscan = off")
            explain, full = "EXPLAIN ", re.compile(rf"Seq Scan on ({'|'.join(TABLES)})\b")
        else:
            explain, full = "EXPLAIN QUERY PLAN ", re.compile(rf"\bSCAN ({'|'.join(TABLES)})\b")
        for sql, params in statements:
            cur.execute(explain + sql, params)
            plan = "\n".join(str(row[-1]) for row in cur.fetchall())
            if full.search(plan):
                found.append(f"{' '.join(sql.split())} -> {plan}")
        raw.rollback()
    finally:
        raw.close()
    return found


def test_listing_inspecting_and_rolling_back_use_indexes(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.apps.add("big")
        uow.apps.add("other")
        build = uow.builds.add("big", "b", "services: {}", "shipmate.yml")
        uow.apps.lock("big")
        ids = insert_releases(
            uow,
            "big",
            [
                NewRelease(build.id, {"N": str(i)}, "services: {}", "shipmate.yml", f"env {i}")
                for i in range(3000)
            ],
        )
        insert_releases(uow, "other", [NewRelease(None, {}, None, None, "x") for _ in range(500)])
    oldest = ids[0]

    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        if sql.lstrip().upper().startswith("SELECT") and not many:
            statements.append((sql, params))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        # What `releases`, `releases info` and a rollback read (see services/releases.py).
        with store.unit_of_work() as uow:
            uow.apps.get("big")
            assert [r.id for r in uow.releases.list("big", 20)] == ids[::-1][:20]
        with store.unit_of_work() as uow:
            uow.releases.get("big", oldest)
            uow.promotions.of_release(oldest)
        with store.unit_of_work() as uow:
            uow.apps.lock("big")
            target = uow.releases.get("big", oldest)
            uow.promotions.running("big")
            copy = uow.releases.add(
                "big", target.build_id, target.env, target.manifest, None, "rollback"
            )
            uow.promotions.add("big", copy.id, None, "rollback", "Pending")
            uow.releases.latest("big")
            uow.events.list("big", promotion_id="PNOSUCHONE")
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert len(statements) >= 8
    assert _full_scans(store, statements) == []
