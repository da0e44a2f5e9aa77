"""Starting, stopping and migrating a rack on this machine: `shipmate rack start/stop/migrate`.

The CLI speaks to a rack over HTTP only, but a rack that is not running has no API: these
commands act on the rack's home directly. Starting runs the rack process (detached or not);
stopping signals it and, with --all, stops what outlives it (the app processes, then the
router daemon); migrating moves the state store's schema while no rack holds it. The CLI
calls this module for its `rack` commands only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipmate.common.files import atomic_write
from shipmate.common.pids import pid_alive, same_process
from shipmate.common.waiting import WaitTimeout, poll_until
from shipmate.config import Settings
from shipmate.domain.errors import ShipmateError

if TYPE_CHECKING:
    from shipmate.services.ports import UnitOfWork

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def running_pid(settings: Settings) -> int | None:
    """The PID of the rack serving `settings.home`, from its rack.json, if it still runs."""
    try:
        pid = int(json.loads(settings.rack_file.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None
    # A rack that died unreaped (no parent, and init does not reap in some containers) is
    # a zombie: it answers kill(pid, 0) but does not run. pid_alive says so.
    return pid if pid_alive(pid) else None


def run(settings: Settings, api: str, router: str) -> None:
    """Serve the rack in this process until SIGTERM or Ctrl-C."""
    from shipmate.rack import run as serve

    serve(settings, api, router)


@dataclass(frozen=True)
class Started:
    pid: int
    api: str
    router: str
    log_file: Path


def start_detached(settings: Settings, api: str, router: str, insecure: bool) -> Started:
    """Start the rack in a new session, its output to rack.log; return once it answers."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.rack_file.unlink(missing_ok=True)
    home = settings.home.resolve()
    # Started from any directory: -P keeps the current directory off sys.path (a `shipmate/`
    # folder or a `yaml.py` there would shadow the rack's own imports), and the rack runs in
    # its home, so it holds no user directory busy. Relative paths were the caller's: made
    # absolute before the directory changes under them.
    env = {**os.environ, "SHIPMATE_HOME": str(home)}
    env["SHIPMATE_DATABASE_URL"] = _absolute_sqlite(settings.database_url)
    with settings.log_file.open("ab") as log:
        # Only what this start writes can say why it failed: older starts wrote above it.
        offset = log.seek(0, os.SEEK_END)
        process = subprocess.Popen(
            [
                sys.executable,
                "-P",
                "-m",
                "shipmate.cli.main",
                "rack",
                "start",
                "--api",
                api,
                "--router",
                router,
                *(["--router-https", settings.router_https] if settings.router_https else []),
                *(["--acme-directory", settings.acme_directory] if settings.acme_directory else []),
                *(["--acme-email", settings.acme_email] if settings.acme_email else []),
                *(["--tls-cert", settings.tls_cert] if settings.tls_cert else []),
                *(["--tls-key", settings.tls_key] if settings.tls_key else []),
                *(["--insecure"] if insecure else []),
                *(["--runtime", settings.runtime] if settings.runtime != "local" else []),
                *(["--registry", settings.registry] if settings.registry else []),
                *(["--docker-host", settings.docker_host] if settings.docker_host else []),
                *(["--kubeconfig", settings.kubeconfig] if settings.kubeconfig else []),
                *(
                    ["--namespace-prefix", settings.namespace_prefix]
                    if settings.namespace_prefix
                    else []
                ),
            ],
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def answered() -> dict[str, str] | None:
        code = process.poll()
        if code is not None:
            reason = start_failure(settings.log_file, offset, code)
            raise ShipmateError(f"the rack did not start: {reason} (see {settings.log_file})")
        if not settings.rack_file.exists():
            return None
        # The rack writes rack.json once its API listens, and atomically.
        info: dict[str, str] = json.loads(settings.rack_file.read_text())
        return info

    try:
        info = poll_until(answered, START_TIMEOUT, what="the rack to answer")
    except WaitTimeout:
        process.terminate()
        raise ShipmateError(
            f"the rack did not answer within {START_TIMEOUT:g}s; see {settings.log_file}"
        ) from None
    return Started(process.pid, info["api"], info["router"], settings.log_file)


def _absolute_sqlite(url: str) -> str:
    prefix = "sqlite:///"
    path = url[len(prefix) :] if url.startswith(prefix) else ""
    if not path or path.startswith("/") or path.startswith(":memory:"):
        return url
    return prefix + os.path.abspath(path)


def start_failure(log_file: Path, offset: int, code: int) -> str:
    """Why a process that wrote its output to `log_file` from `offset` on exited at start:
    its last `ERROR:` line, else the exception a traceback ends with, else its last line."""
    try:
        with log_file.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        text = ""
    lines = [line for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("ERROR: "):
            return line.removeprefix("ERROR: ")
    tracebacks = [i for i, line in enumerate(lines) if line.startswith("Traceback (")]
    if tracebacks:
        # The exception is the first line after the frames that is not indented.
        for line in lines[tracebacks[-1] + 1 :]:
            if not line[0].isspace():
                return line
    return lines[-1] if lines else f"it exited with code {code} before writing anything"


# How long a graceful stop waits for the promotions and builds running (`rack stop --timeout`).
STOP_WAIT = 60.0


def stop_request_file(settings: Settings) -> Path:
    """How `rack stop` tells the rack what its SIGTERM asks: the wait's bound, or --force."""
    return settings.home / "stop.json"


def read_stop_request(settings: Settings, pid: int) -> tuple[float, bool]:
    """(bound of the wait, force) asked of the rack `pid`; a plain SIGTERM (systemd, kill)
    asks for the default graceful stop. The request is used once."""
    path = stop_request_file(settings)
    try:
        request = json.loads(path.read_text())
        path.unlink(missing_ok=True)
        if int(request["pid"]) == pid:
            return float(request["timeout"]), bool(request["force"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return STOP_WAIT, False


@dataclass(frozen=True)
class Work:
    """A promotion or a build a rack is running: what a graceful stop waits for."""

    kind: str  # "promotion" or "build"
    app: str
    id: str  # the release promoted, or the build

    def __str__(self) -> str:
        if self.kind == "promotion":
            return f"the promotion of {self.id} of app {self.app}"
        return f"build {self.id} of app {self.app}"


def unfinished_work(uow: UnitOfWork) -> list[Work]:
    """The promotions and builds the state store says are not finished."""
    found = [Work("promotion", p.app, p.release_id) for p in uow.promotions.unfinished()]
    found += [Work("build", b.app, b.id) for b in uow.builds.unfinished()]
    return found


def stop_rack(
    settings: Settings,
    pid: int,
    *,
    timeout: float = STOP_WAIT,
    force: bool = False,
    waiting: Callable[[Work], None] = lambda work: None,
) -> list[Work]:
    """SIGTERM the rack and wait for it to exit; return what it left unfinished.

    The rack first finishes the promotions and builds running, for up to `timeout` seconds
    (`waiting` is called once for each), then its requests; with `force` it interrupts them
    (the next start reverts an interrupted promotion and fails an interrupted build).
    """
    from shipmate.store.db import Store

    atomic_write(
        stop_request_file(settings),
        json.dumps({"pid": pid, "timeout": timeout, "force": force}).encode(),
    )
    os.kill(pid, signal.SIGTERM)
    try:
        store: Store | None = Store(settings.database_url)
    except Exception:  # a store the CLI cannot open only costs the messages
        store = None
    seen: set[Work] = set()

    def running() -> list[Work]:
        if store is None:
            return []
        try:
            with store.unit_of_work() as uow:
                return unfinished_work(uow)
        except Exception:  # a store the CLI cannot read only costs the messages
            return []

    def stopped() -> bool:
        if not pid_alive(pid):
            return True
        if not force:
            for work in running():
                if work not in seen:
                    seen.add(work)
                    waiting(work)
        return False

    try:
        poll_until(stopped, timeout + STOP_TIMEOUT, interval=0.25, what=f"the rack (pid {pid})")
    except WaitTimeout:
        raise ShipmateError(
            f"the rack (pid {pid}) did not stop within {timeout + STOP_TIMEOUT:g}s"
        ) from None
    else:
        return running()
    finally:
        if store is not None:
            store.close()


def stop_apps(settings: Settings) -> int:
    """Stop the app processes that outlive the rack; return how many there were."""
    from shipmate.runtimes.local.cleanup import stop_all_processes

    return stop_all_processes(settings.home)


def router_pid(settings: Settings) -> int | None:
    """The PID of the router daemon serving `settings.home`, if one runs."""
    from shipmate.router import lifecycle as remote
    from shipmate.router.home import Paths

    info = remote.running(Paths(settings.home))
    return None if info is None else info.pid


@dataclass(frozen=True)
class Remains:
    """What serves under a home whose rack (API) is down: the router and the app processes."""

    router_pid: int | None
    router_url: str | None
    processes: dict[str, int]  # running processes of each app


def remains(settings: Settings) -> Remains:
    from shipmate.router import lifecycle as remote
    from shipmate.router.home import Paths

    info = remote.running(Paths(settings.home))
    counts: dict[str, int] = {}
    # The local runtime's shims keep run/<app>/<process>/state.json; a live shim is a
    # running process (its PID and start time tell it from a reused PID).
    for state_file in sorted((settings.home / "run").glob("*/*/state.json")):
        try:
            state = json.loads(state_file.read_text())
            alive = state.get("status") != "exited" and same_process(
                state.get("shim_pid"), state.get("shim_start")
            )
        except (OSError, ValueError, AttributeError):
            continue
        if alive:
            app = state_file.parent.parent.name
            counts[app] = counts.get(app, 0) + 1
    return Remains(
        info.pid if info else None, info.url if info else None, dict(sorted(counts.items()))
    )


def stop_router(settings: Settings) -> None:
    from shipmate.router import lifecycle as remote
    from shipmate.router.home import Paths

    remote.stop(Paths(settings.home))


@dataclass(frozen=True)
class SchemaChange:
    """What `rack migrate` would do: `where` names the store, passwords masked."""

    where: str
    before: str | None
    after: str
    downgrade: bool


class StateStore:
    """The rack's state store, opened by `rack migrate` to read and move its schema."""

    def __init__(self, settings: Settings) -> None:
        from shipmate.store import db

        self._db = db
        self._store = db.Store(settings.database_url)

    def plan(self, target: str | None) -> SchemaChange:
        """The change to `target` (default: the latest); ShipmateError for an unknown one."""
        before = self._db.current_revision(self._store.engine)
        after = target or self._db.head_revision()
        self._db.check_known(before, after)
        known = self._db.known_revisions()
        downgrade = before is not None and known.index(after) < known.index(before)
        return SchemaChange(self._db.safe_url(self._store.url), before, after, downgrade)

    def apply(self, change: SchemaChange) -> None:
        self._store.migrate(change.after)

    def close(self) -> None:
        self._store.close()


@contextmanager
def state_store(settings: Settings) -> Iterator[StateStore]:
    settings.home.mkdir(parents=True, exist_ok=True)
    store = StateStore(settings)
    try:
        yield store
    finally:
        if store is not None:
            store.close()
