"""The unit of work and the key ring behind the store port, on both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from shipmate.bootstrap import build_context
from shipmate.config import Settings
from shipmate.domain.errors import Conflict, NotFound
from shipmate.services import keys
from shipmate.store.crypto import Keyring, load_keyring
from shipmate.store.db import Store
from shipmate.store.keys import StoreKeys


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.migrate()
    try:
        yield store
    finally:
        store.close()


def test_commits_on_success_and_rolls_back_on_an_exception(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.apps.add("kept")
    with pytest.raises(RuntimeError), store.unit_of_work() as uow:
        uow.apps.add("dropped")
        uow.releases.add("kept", None, {"A": "1"}, None, None, "env add:A")
        raise RuntimeError("boom")
    with store.unit_of_work() as uow:
        assert [a.name for a in uow.apps.list()] == ["kept"]
        assert uow.releases.latest("kept") is None


def test_a_second_app_of_one_name_is_a_conflict(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.apps.add("app")
    # Without the check the use case makes first: what a concurrent request would meet.
    with pytest.raises(Conflict, match="app app already exists"), store.unit_of_work() as uow:
        uow.apps.add("app")
    with store.unit_of_work() as uow:
        assert len(uow.apps.list()) == 1


def test_repositories_refuse_what_belongs_to_another_app(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.apps.add("one")
        uow.apps.add("two")
        release = uow.releases.add("one", None, {}, None, None, "first")
        promotion = uow.promotions.add("one", release.id, None, "promote", "Pending")
    with store.unit_of_work() as uow:
        with pytest.raises(NotFound, match=rf"no such release: {release.id} \(app two\)"):
            uow.releases.get("two", release.id)
        with pytest.raises(NotFound, match=rf"no such promotion: {promotion.id} \(app two\)"):
            uow.promotions.get("two", promotion.id)
        assert uow.promotions.running("one") == promotion
        assert uow.promotions.running("two") is None


def test_release_environments_are_sealed_and_numbers_follow(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.apps.add("app")
        first = uow.releases.add("app", None, {"SECRET": "hunter2"}, None, None, "env add:SECRET")
        second = uow.releases.add("app", None, {}, None, None, "env remove:SECRET")
    assert (first.number, second.number) == (1, 2)
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT env FROM releases WHERE id = :id"), {"id": first.id})
        sealed = stored.scalar_one()
    assert "hunter2" not in sealed
    assert json.loads(store.keys.keyring.decrypt(sealed, "x")) == {"SECRET": "hunter2"}


def test_open_store_finishes_an_interrupted_rotation(database_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    old = load_keyring(key_file)
    store = Store(database_url, StoreKeys(old, key_file))
    try:
        store.migrate()
        with store.unit_of_work() as uow:
            uow.apps.add("app")
            release = uow.releases.add("app", None, {"A": "1"}, None, None, "env add:A")
        # A rotation that stopped after writing the new key beside the old one.
        new = Fernet.generate_key()
        key_file.write_text(f"{new.decode()}\n{old.primary.decode()}\n")
        store.keys = StoreKeys.load(key_file)
        keys.open_store(store)
        assert load_keyring(key_file).keys == (new,)
        assert store.keys.keyring.keys == (new,)
        with store.unit_of_work() as uow:
            assert uow.releases.get("app", release.id).env == {"A": "1"}
            assert uow.audit.list()[0].detail == (
                "1 release environments re-encrypted; finished an interrupted key rotation"
            )
    finally:
        store.close()


def test_rotate_keeps_every_environment_readable(store: Store, tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    store.keys = StoreKeys(load_keyring(key_file), key_file)
    before = store.keys.keyring.primary
    with store.unit_of_work() as uow:
        uow.apps.add("app")
        ids = [uow.releases.add("app", None, {"N": str(i)}, None, None, "e").id for i in range(3)]
    ctx: Any = SimpleNamespace(store=store)
    assert keys.rotate(ctx) == 3
    assert store.keys.count == 1 and store.keys.keyring.primary != before
    assert load_keyring(key_file).keys == store.keys.keyring.keys
    with store.unit_of_work() as uow:
        assert [uow.releases.get("app", i).env for i in ids] == [{"N": "0"}, {"N": "1"}, {"N": "2"}]


def test_a_key_from_the_environment_with_one_key_is_not_rotated(store: Store) -> None:
    store.keys = StoreKeys(Keyring((Fernet.generate_key(),), "env"))
    ctx: Any = SimpleNamespace(store=store)
    with pytest.raises(Exception, match="comes from SHIPMATE_SECRET_KEY, which the rack cannot"):
        keys.rotate(ctx)


class _NoRuntime:
    name = "fake"


def test_build_context_opens_the_settings_store_with_the_given_runtime(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'db'}", max_upload=1 << 20)
    runtime: Any = _NoRuntime()
    ctx = build_context(settings, runtime=runtime)
    try:
        assert ctx.runtime is runtime
        assert (home.stat().st_mode & 0o777) == 0o700
        assert (home / "secret.key").exists()  # the store has the rack's key ring
        with ctx.store.unit_of_work() as uow:
            uow.apps.add("app")
        event = ctx.events.emit("app", "obj", "hello")
        assert (event.runtime, event.message) == ("fake", "hello")
    finally:
        ctx.store.close()
