"""Per-app serialization in the store, on real databases, with real concurrent transactions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from shipmate.services import environment
from shipmate.store.db import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.migrate()
    try:
        yield store
    finally:
        store.close()


def _ctx(store: Store) -> Any:
    # change_env needs nothing of the context but the store.
    return SimpleNamespace(store=store)


def test_concurrent_env_changes_chain_without_forks(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.apps.add("app")
    n = 20
    start = threading.Barrier(n)

    def change(i: int) -> str:
        start.wait()
        release = environment.change_env(_ctx(store), "app", [f"K{i}=v{i}"], []).release
        assert release is not None
        return release.id

    with ThreadPoolExecutor(n) as pool:
        created = list(pool.map(change, range(n)))

    with store.unit_of_work() as uow:
        releases = list(reversed(uow.releases.list("app", limit=100)))
    assert sorted(r.id for r in releases) == sorted(created)
    assert [r.number for r in releases] == list(range(1, n + 1))
    parent: dict[str, str] = {}
    for release in releases:
        key = release.description.removeprefix("env add:")
        assert release.description == f"env add:{key}"
        # Each release is its predecessor plus exactly its own key: nothing lost, no fork.
        assert release.env == {**parent, key: f"v{key[1:]}"}
        parent = release.env
    assert parent == {f"K{i}": f"v{i}" for i in range(n)}


def test_a_locked_app_does_not_block_another(store: Store, database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite serializes every write transaction (each lasts milliseconds)")
    with store.unit_of_work() as uow:
        uow.apps.add("busy")
        uow.apps.add("free")
    locked = threading.Event()
    release_lock = threading.Event()

    def hold() -> None:
        with store.unit_of_work() as uow:
            uow.apps.lock("busy")
            locked.set()
            release_lock.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        # Another app goes on while "busy" is locked...
        assert environment.change_env(_ctx(store), "free", ["A=1"], []).release is not None
        # ...while a change of "busy" waits for the lock.
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(environment.change_env, _ctx(store), "busy", ["A=1"], [])
            with pytest.raises(TimeoutError):
                waiting.result(timeout=1.0)
            release_lock.set()
            assert waiting.result(timeout=30).release is not None
    finally:
        release_lock.set()
        holder.join()
