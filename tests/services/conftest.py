"""Use cases driven as the API drives them, over a real SQLite file and a FakeRuntime.

`async def` tests run in a fresh event loop each (see pytest_pyfunc_call), so promotions run
as the tasks they are in the rack (`ctx.spawn`) and the test awaits them.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from shipmate.bootstrap import build_context
from shipmate.common.waiting import wait_for
from shipmate.config import Settings
from shipmate.domain.humanize import utcnow
from shipmate.services import apps, releases
from shipmate.services.context import Context
from shipmate.services.ports import StorePort
from shipmate.store.db import Store
from shipmate.structs import App, Event, Promotion, Release
from tests.services.fakes import FakeRuntime

# A hung test fails in seconds rather than at pytest-timeout's five minutes.
TEST_TIMEOUT = 10.0
POLL = 0.002
SHM = Path("/dev/shm")
SUCCESS = [
    "Status: Running => Pending",
    "Status: Pending => Updating",
    "Status: Updating => Running",
]


def manifest(
    count: int = 1, release: str | None = None, worker: bool = False, deadline: int | None = None
) -> str:
    """A shipmate.yml: `web` (routed, health-checked), optionally `worker` (no port)."""
    lines = []
    if release:
        lines.append(f"release: {release}")
    lines += [
        "environment:",
        "  - GREETING=hello",
        "services:",
        "  web:",
        "    command: python3 app.py",
        "    port: 5000",
        "    health: /health",
        "    scale:",
        f"      count: {count}",
    ]
    if deadline is not None:
        lines += ["    deployment:", f"      deadline: {deadline}"]
    if worker:
        lines += ["  worker:", "    command: python3 worker.py"]
    return "\n".join(lines) + "\n"


@dataclass
class Rack:
    """A rack's Context with a fake runtime, and what the tests read back from it."""

    settings: Settings
    ctx: Context
    fake: FakeRuntime
    opened: list[StorePort] = field(default_factory=list)

    # seeding: what `shipmate build` leaves behind, without running the builder
    def deploy(
        self, app: str, env: dict[str, str] | None = None, text: str | None = None
    ) -> Release:
        """A new build of `app` and its release (not promoted); creates the app if needed."""
        if app not in {a.name for a in apps.list_apps(self.ctx)}:
            apps.create_app(self.ctx, app)
        text = text or manifest()
        with self.ctx.store.unit_of_work() as uow:
            build_id = uow.builds.new_id()
            build = uow.builds.add(app, f"build {build_id}", text, "shipmate.yml", build_id)
            latest = uow.releases.latest(app)
            release_env = dict(latest.env) if latest else {}
            release_env.update(env or {})
            release = uow.releases.add(
                app, build.id, release_env, text, "shipmate.yml", build.description
            )
            uow.builds.update(build.id, status="complete", release_id=release.id, ended_at=utcnow())
        return release

    async def promote(self, app: str, release_id: str | None = None) -> Promotion:
        started = releases.promote(self.ctx, app, release_id, None)
        return await self.finish(started.promotion.id)

    async def finish(self, promotion_id: str, timeout: float = 5.0) -> Promotion:
        """The promotion once it has finished; its task's exception, if it raised one."""
        task = self.ctx.promotions.get(promotion_id)
        if task is not None:
            await task
        return await wait_for(
            lambda: self._finished(promotion_id),
            timeout,
            interval=POLL,
            what=f"promotion {promotion_id} to finish",
        )

    def _finished(self, promotion_id: str) -> Promotion | None:
        promotion = self.promotion(promotion_id)
        return promotion if promotion.finished_at is not None else None

    # reading back
    def promotion(self, promotion_id: str) -> Promotion:
        with self.ctx.store.unit_of_work() as uow:
            return uow.promotions.get_by_id(promotion_id)

    def promotions(self, app: str) -> list[Promotion]:
        with self.ctx.store.unit_of_work() as uow:
            listed = uow.releases.list(app, 1000)
            found = [p for r in listed for p in uow.promotions.of_release(r.id)]
        return sorted(found, key=lambda p: p.created_at)

    def release(self, app: str, release_id: str) -> Release:
        return releases.get_release(self.ctx, app, release_id)[0]

    def app(self, name: str) -> App:
        return apps.get_app(self.ctx, name)

    def events(self, app: str, promotion_id: str | None = None) -> list[Event]:
        with self.ctx.store.unit_of_work() as uow:
            return uow.events.list(app, promotion_id=promotion_id)

    def messages(self, app: str, promotion_id: str | None = None) -> list[str]:
        return [e.message for e in self.events(app, promotion_id)]

    def statuses(self, promotion_id: str) -> list[str]:
        """The `Status: A => B` events of the promotion, in order."""
        promotion = self.promotion(promotion_id)
        return [m for m in self.messages(promotion.app, promotion_id) if m.startswith("Status: ")]

    def audit(self, app: str) -> list[str]:
        with self.ctx.store.unit_of_work() as uow:
            return [f"{a.action} {a.target}".strip() for a in reversed(uow.audit.list(app))]

    def formation(self, app: str) -> dict[str, int]:
        with self.ctx.store.unit_of_work() as uow:
            return uow.formation.get(app)

    # a rack stopping and starting again over the same database
    def crash(self) -> Rack:
        """The rack died (no revert, no goodbye); a new one starts over the same database
        file and home, its runtime finding the processes the shims kept alive."""
        for task in list(self.ctx.tasks):
            task.cancel()
        self.ctx.store.close()
        return open_rack(self.settings, FakeRuntime.restarted(self.fake), self.opened)


def open_rack(settings: Settings, fake: FakeRuntime, opened: list[StorePort]) -> Rack:
    """The rack's own wiring (shipmate.bootstrap: the real store, opened and migrated as the
    rack opens it) with the fake runtime."""
    ctx = build_context(settings, runtime=fake)
    opened.append(ctx.store)

    # What the runtime reports outside any promotion (crashes, replacements): the rack wires
    # the local runtime's to the same event log.
    def app_event(app: str, obj: str, message: str) -> None:
        ctx.events.emit(app, obj, message)

    fake.events = app_event
    return Rack(settings, ctx, fake, opened)


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests start no OS process: anything that tries fails the test."""

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError(f"a use-case test started a process: {args[:1]}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(asyncio, "create_subprocess_exec", refuse)
    monkeypatch.setattr(asyncio, "create_subprocess_shell", refuse)
    monkeypatch.setattr(os, "posix_spawn", refuse)
    monkeypatch.setattr(os, "fork", refuse)


@pytest.fixture
def rack_dir(tmp_path: Path) -> Iterator[Path]:
    """Where the test's rack keeps its database and home: in memory when the machine has a
    tmpfs. The store commits with synchronous=FULL, and a few milliseconds of fsync for each
    of the dozens of transactions of a promotion would be most of this directory's time."""
    if not SHM.is_dir() or not os.access(SHM, os.W_OK):
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="shipmate-services-", dir=SHM))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database the real migrations brought to the newest schema, once for the session:
    each test starts from a copy, as migrating from nothing is a third of a test's time."""
    path = tmp_path_factory.mktemp("template") / "shipmate.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.close()  # the last connection checkpoints the WAL: the file holds everything
    return path


@pytest.fixture
def rack(rack_dir: Path, migrated: Path) -> Iterator[Rack]:
    shutil.copyfile(migrated, rack_dir / "shipmate.db")
    settings = Settings(
        home=rack_dir / "home",
        database_url=f"sqlite:///{rack_dir / 'shipmate.db'}",
        max_upload=1 << 20,
    )
    opened: list[StorePort] = []
    yield open_rack(settings, FakeRuntime(), opened)
    for store in opened:
        store.close()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in inspect.signature(test).parameters}
    asyncio.run(asyncio.wait_for(test(**kwargs), TEST_TIMEOUT))
    return True
