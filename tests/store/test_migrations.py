"""Schema migrations on both backends: upgrades keep the data, downgrades work or refuse."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text

from shipmate.domain.errors import ShipmateError
from shipmate.store import db
from shipmate.store.db import Store
from tests.integration.conftest import _cli, start_rack, stop_rack

FIRST = "0001"
T0 = datetime(2026, 1, 15, 14, 30, 0)
# No command: a restarted rack has nothing to run for it (its build directory is not there).
MANIFEST = "services:\n  web:\n    port: 5000\n"

# What a rack of the first schema wrote: an app, a build, two releases, a finished promotion
# and its events (plain SQL, since today's code writes today's schema).
LEGACY = [
    ("INSERT INTO apps (name, status, release_id, created_at) VALUES ('old', 'running', "
     "'RAAAAAAAAB', :t)"),
    ("INSERT INTO builds (id, app, status, description, manifest, manifest_name, release_id, "
     "created_at, started_at, ended_at) VALUES ('BAAAAAAAAA', 'old', 'complete', 'first', "
     ":m, 'shipmate.yml', 'RAAAAAAAAA', :t, :t, :t)"),
    ("INSERT INTO releases (id, app, number, build_id, env, manifest, manifest_name, "
     "description, copied_from, created_at) VALUES ('RAAAAAAAAA', 'old', 1, 'BAAAAAAAAA', "
     "'{}', :m, 'shipmate.yml', 'first', NULL, :t)"),
    ("INSERT INTO releases (id, app, number, build_id, env, manifest, manifest_name, "
     "description, copied_from, created_at) VALUES ('RAAAAAAAAB', 'old', 2, 'BAAAAAAAAA', "
     "'{\"FOO\": \"bar\"}', :m, 'shipmate.yml', 'env add:FOO', NULL, :t)"),
    ("INSERT INTO promotions (id, app, release_id, previous_release_id, kind, state, history, "
     "reason, created_at, finished_at) VALUES ('PAAAAAAAAA', 'old', 'RAAAAAAAAB', "
     "'RAAAAAAAAA', 'promote', 'Running', 'Pending,Updating,Running', NULL, :t, :t)"),
    ("INSERT INTO events (app, promotion_id, created_at, runtime, object, message) VALUES "
     "('old', 'PAAAAAAAAA', :t, 'local', 'atom/app', 'Status: Updating => Running')"),
]  # fmt: skip


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    try:
        yield store
    finally:
        store.close()


def _legacy_rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "apps": "SELECT name, status, release_id FROM apps",
        "builds": "SELECT id, app, status, release_id FROM builds",
        "releases": "SELECT id, number, build_id, env, description FROM releases ORDER BY number",
        "promotions": "SELECT id, release_id, state, history FROM promotions",
        "events": "SELECT app, promotion_id, message FROM events",
    }
    with engine.connect() as conn:
        return {k: [tuple(r) for r in conn.execute(text(q))] for k, q in queries.items()}


def _at_first_revision_with_data(store: Store) -> dict[str, list[tuple[object, ...]]]:
    assert store.migrate(FIRST) == db.Migration(None, FIRST)
    with store.engine.begin() as conn:
        for statement in LEGACY:
            conn.execute(text(statement), {"t": T0, "m": MANIFEST})
    return _legacy_rows(store.engine)


def test_rack_start_upgrades_a_first_revision_database_and_keeps_the_data(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    before = _at_first_revision_with_data(store)
    head = db.head_revision()
    assert db.known_revisions()[0] == FIRST

    rack = start_rack(tmp_path, database_url)  # migrates to the latest schema on its way up
    try:
        assert db.current_revision(store.engine) == head
        info = json.loads(rack.ok("apps", "info", "-a", "old", "--json"))
        assert info["release"] == "RAAAAAAAAB"
        listed = rack.releases("old")
        assert [(r["id"], r["build"], r["env"], r["description"]) for r in listed] == [
            ("RAAAAAAAAB", "BAAAAAAAAA", {"FOO": "bar"}, "env add:FOO"),
            ("RAAAAAAAAA", "BAAAAAAAAA", {}, "first"),
        ]
        assert listed[0]["active"] and not listed[1]["active"]
        release = json.loads(rack.ok("releases", "info", "RAAAAAAAAB", "-a", "old", "--json"))
        [promotion] = release["promotions"]
        assert (promotion["id"], promotion["history"]) == (
            "PAAAAAAAAA",
            ["Pending", "Updating", "Running"],
        )
        build = json.loads(rack.ok("builds", "info", "BAAAAAAAAA", "-a", "old", "--json"))
        assert (build["status"], build["release"]) == ("complete", "RAAAAAAAAA")
    finally:
        stop_rack(rack)
    after = _legacy_rows(store.engine)
    # The environment column may have been sealed since (encryption at rest), and the rack
    # added events of its own; the rest is as it was.
    assert [r[:3] + r[4:] for r in after["releases"]] == [r[:3] + r[4:] for r in before["releases"]]
    assert after["events"][: len(before["events"])] == before["events"]
    for table in ("apps", "builds", "promotions"):
        assert after[table] == before[table]
    assert store.migrate() == db.Migration(head, head)  # nothing left to do


def test_downgrade_to_the_first_revision_works_or_refuses_whole(store: Store) -> None:
    before = _at_first_revision_with_data(store)
    head = db.head_revision()
    store.migrate()
    try:
        result = store.migrate(FIRST)
    except ShipmateError as exc:
        # Refused: the message says so and why, and nothing changed.
        message = str(exc)
        assert message.startswith(f"cannot downgrade the state store from {head} to ")
        assert "\n" not in message
        assert db.current_revision(store.engine) == head
        assert _legacy_rows(store.engine) == before
        return
    assert result == db.Migration(head, FIRST)
    assert db.current_revision(store.engine) == FIRST
    assert _legacy_rows(store.engine) == before
    assert store.migrate() == db.Migration(FIRST, head)  # and back up again
    assert _legacy_rows(store.engine) == before


def test_a_downgrade_refused_half_way_changes_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A migration whose downgrade would lose data raises NotImplementedError (0002's does
    # while environments are encrypted). Here the steps above the last one run, then it refuses:
    # the transaction must undo those steps too.
    revisions = db.known_revisions()
    if len(revisions) < 3:
        pytest.skip("fewer than three schema revisions: no half-way point")
    store.migrate()
    with store.engine.begin() as conn:
        conn.execute(text(LEGACY[0]), {"t": T0, "m": MANIFEST})
    tables = set(inspect(store.engine).get_table_names())
    head = db.head_revision()
    real = command.downgrade

    def refuse_half_way(cfg: Config, target: str, **kwargs: Any) -> None:
        real(cfg, revisions[-2])
        raise NotImplementedError("the last step would lose data")

    monkeypatch.setattr(command, "downgrade", refuse_half_way)
    with pytest.raises(ShipmateError) as refused:
        store.migrate(FIRST)
    assert str(refused.value) == (
        f"cannot downgrade the state store from {head} to {FIRST}: the last step would lose data"
    )
    assert db.current_revision(store.engine) == head
    assert set(inspect(store.engine).get_table_names()) == tables
    with store.unit_of_work() as uow:
        assert uow.apps.get("old").release_id == "RAAAAAAAAB"


def _shipmate(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env.update(SHIPMATE_HOME=str(home), SHIPMATE_DATABASE_URL=url)
    return subprocess.run(
        [*_cli(), *args], env=env, cwd=home, capture_output=True, text=True, timeout=120
    )


def test_rack_migrate_says_from_which_revision_to_which(database_url: str, tmp_path: Path) -> None:
    head = db.head_revision()
    shown = db.safe_url(db.normalize_url(database_url))

    done = _shipmate(tmp_path, database_url, "rack", "migrate", "--to", FIRST)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"Migrating the state store {shown} from empty to {FIRST}... OK\n"
    store = Store(database_url)
    try:
        with store.engine.begin() as conn:
            for statement in LEGACY:
                conn.execute(text(statement), {"t": T0, "m": MANIFEST})
        before = _legacy_rows(store.engine)

        done = _shipmate(tmp_path, database_url, "rack", "migrate")
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout == f"Migrating the state store {shown} from {FIRST} to {head}... OK\n"
        done = _shipmate(tmp_path, database_url, "rack", "migrate")
        assert done.stdout == f"The state store {shown} is at schema {head}: nothing to do\n"
        assert _legacy_rows(store.engine) == before

        done = _shipmate(tmp_path, database_url, "rack", "migrate", "--to", "0999")
        assert done.returncode == 1
        assert done.stderr.startswith("ERROR: unknown schema revision 0999: this shipmate knows ")
        assert done.stderr.count("\n") == 1

        # A downgrade says whether it worked; either way it is one line and all or nothing.
        done = _shipmate(tmp_path, database_url, "rack", "migrate", "--to", FIRST)
        if done.returncode == 0:
            assert done.stdout == (
                f"Downgrading the state store {shown} from {head} to {FIRST}... OK\n"
            )
            assert db.current_revision(store.engine) == FIRST
        else:
            assert done.stderr.startswith(
                f"ERROR: cannot downgrade the state store from {head} to {FIRST}: "
            )
            assert done.stderr.count("\n") == 1
            assert db.current_revision(store.engine) == head
        assert _legacy_rows(store.engine) == before
    finally:
        store.close()


def test_a_database_newer_than_the_code_is_refused(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url)
    try:
        store.migrate()
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        store.close()
    expected = (
        "the database is at schema revision 9999, newer than this shipmate (which knows up "
        f"to {db.head_revision()}); upgrade shipmate"
    )
    done = _shipmate(tmp_path, database_url, "rack", "migrate")
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"ERROR: {expected}\n")
    done = _shipmate(
        tmp_path, database_url, "rack", "start", "--detach", "--api", "127.0.0.1:0",
        "--router", "127.0.0.1:0",
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (
        1,
        f"ERROR: the rack did not start: {expected} (see {tmp_path / 'rack.log'})\n",
    )
    assert not (tmp_path / "rack.json").exists()
    # Nothing was changed by either attempt.
    with Store(database_url).engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "9999"


def test_urls(tmp_path: Path) -> None:
    assert db.normalize_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    assert db.safe_url("postgresql+psycopg://u:secret@h/d") == "postgresql+psycopg://u:***@h/d"
    with pytest.raises(ShipmateError, match=r"^unsupported state store mysql://u@h/d: use "):
        db.make_engine("mysql://u@h/d")
    with pytest.raises(ShipmateError, match=r"^SHIPMATE_DATABASE_URL is not a database URL"):
        db.make_engine("nonsense")
    unreachable = Store("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ShipmateError) as refused:
        unreachable.migrate()
    message = str(refused.value)
    assert message.startswith(
        "cannot open the state store postgresql+psycopg://nobody@127.0.0.1:1/none: "
    )
    assert "\n" not in message
    assert json.dumps(message)
