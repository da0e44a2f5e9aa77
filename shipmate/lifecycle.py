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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shipmate.common.pids import pid_alive, same_process
from shipmate.common.waiting import WaitTimeout, poll_until
from shipmate.config import Settings
from shipmate.domain.errors import ShipmateError

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
                *(["--tls-cert", settings.tls_cert] if settings.tls_cert else []),
                *(["--tls-key", settings.tls_key] if settings.tls_key else []),
                *(["--insecure"] if insecure else []),
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


def stop_rack(pid: int) -> None:
    """SIGTERM the rack and wait for it to exit (it finishes its requests first)."""
    os.kill(pid, signal.SIGTERM)
    try:
        poll_until(lambda: not pid_alive(pid), STOP_TIMEOUT, what=f"the rack (pid {pid})")
    except WaitTimeout:
        raise ShipmateError(f"the rack (pid {pid}) did not stop within {STOP_TIMEOUT:g}s") from None


def stop_apps(settings: Settings) -> int:
    """Stop the app processes that outlive the rack; return how many there were."""
    from shipmate.runtimes.local.cleanup import stop_all_processes

    return stop_all_processes(settings.home)


def router_pid(settings: Settings) -> int | None:
    """The PID of the router daemon serving `settings.home`, if one runs."""
    from shipmate.router import remote
    from shipmate.router.daemon import Paths

    info = remote.running(Paths(settings.home))
    return None if info is None else info.pid


@dataclass(frozen=True)
class Remains:
    """What serves under a home whose rack (API) is down: the router and the app processes."""

    router_pid: int | None
    router_url: str | None
    processes: dict[str, int]  # running processes of each app


def remains(settings: Settings) -> Remains:
    from shipmate.router import remote
    from shipmate.router.daemon import Paths

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
    from shipmate.router import remote
    from shipmate.router.daemon import Paths

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
        store.close()
