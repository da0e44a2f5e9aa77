"""Release history stays fast as it grows: listing and rolling back use indexes, not scans."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from shipmate.store.db import Store
from shipmate.store.repository import NewRelease

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
    with store.transaction() as tx:
        tx.create_app("big")
        tx.create_app("other")
        build = tx.create_build("big", "b", "services: {}", "shipmate.yml")
        tx.lock_app("big")
        ids = tx.create_releases_bulk(
            "big",
            [
                NewRelease(build.id, {"N": str(i)}, "services: {}", "shipmate.yml", f"env {i}")
                for i in range(3000)
            ],
        )
        tx.create_releases_bulk(
            "other", [NewRelease(None, {}, None, None, "x") for _ in range(500)]
        )
    oldest = ids[0]

    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        if sql.lstrip().upper().startswith("SELECT") and not many:
            statements.append((sql, params))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        # What `releases`, `releases info` and a rollback read (see services/releases.py).
        with store.transaction() as tx:
            tx.get_app("big")
            assert [r.id for r in tx.list_releases("big", 20)] == ids[::-1][:20]
        with store.transaction() as tx:
            tx.get_release("big", oldest)
            tx.promotions_of_release(oldest)
        with store.transaction() as tx:
            tx.lock_app("big")
            target = tx.get_release("big", oldest)
            tx.running_promotion("big")
            copy = tx.create_release(
                "big", target.build_id, target.env, target.manifest, None, "rollback"
            )
            tx.create_promotion("big", copy.id, None, "rollback", "Pending")
            tx.latest_release("big")
            tx.events("big", promotion_id="PNOSUCHONE")
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert len(statements) >= 8
    assert _full_scans(store, statements) == []
