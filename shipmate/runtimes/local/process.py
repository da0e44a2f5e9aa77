"""One app process on this machine, run by a shim that outlives the rack."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from shipmate.common.addresses import join_host_port
from shipmate.common.pids import same_process
from shipmate.common.waiting import WaitTimeout, wait_for
from shipmate.domain.humanize import utcnow
from shipmate.runtimes.base import ProcessInfo
from shipmate.runtimes.local import cgroups as cg
from shipmate.runtimes.local.command import shell_argv
from shipmate.runtimes.local.isolation import AppUser

# Variables of the rack's own environment that a process needs to run at all; everything
# else a process sees comes from its release, as on Heroku and Convox.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
SPAWN_TIMEOUT = 10.0
SHIM = str(Path(__file__).with_name("shim.py"))
# App processes listen here, and only the router (and the health checks) reach them.
HOST = "127.0.0.1"
# How often a shim that cannot be watched through a pidfd is checked for its exit.
EXIT_POLL = 0.2


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Streams:
    """The standard streams an attached process gets: "pipe" (its input, its output and error
    together) or "tty" (one pseudo-terminal, both descriptors its slave end)."""

    mode: str
    stdin: int
    output: int


@dataclass
class LocalProcess:
    id: str
    app: str
    service: str
    release_id: str
    command: str
    port: int | None
    directory: Path  # the shim's directory: meta.json, state.json, output.log
    started_at: datetime = field(default_factory=utcnow)
    oneoff: bool = False
    status: str = "starting"  # starting, running, stopping, exited
    pid: int | None = None
    pid_start: int | None = None
    shim_pid: int | None = None
    shim_start: int | None = None
    exit_code: int | None = None
    expected_exit: bool = False
    health_problem: str | None = None  # the last failed check, while not yet healthy
    healthy_at: datetime | None = None  # when it first passed its check (None: never yet)
    exited_at: datetime | None = None
    user: AppUser | None = None  # the app's own user, when the rack runs as root
    cgroups: cg.Cgroups | None = None
    oom_killed: bool = False  # the kernel killed it for going over its memory limit
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    _shim: subprocess.Popen[bytes] | None = None
    _poller: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return not self.exited.is_set()

    @property
    def backend(self) -> str:
        """Where the router sends its requests; "" without a port (nothing is routed to it)."""
        return join_host_port(HOST, self.port) if self.port is not None else ""

    @property
    def log_path(self) -> Path:
        return self.directory / "output.log"

    def info(self) -> ProcessInfo:
        return ProcessInfo(
            id=self.id,
            app=self.app,
            service=self.service,
            release_id=self.release_id,
            status=self.status,
            pid=self.pid,
            port=self.port,
            started_at=self.started_at,
            command=self.command,
            memory=self.memory_used(),
        )

    def memory_used(self) -> int | None:
        """Bytes in use: the cgroup's count, else the resident set of the process itself."""
        if self.cgroups is not None:
            return cg.memory_used(self.cgroups)
        if self.pid is None:
            return None
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
        return None

    @property
    def exit_description(self) -> str:
        """How the process ended, for the event of an unexpected exit."""
        if self.oom_killed:
            limit = self.cgroups.memory_mb if self.cgroups is not None else None
            return f"Exited: out of memory (limit {limit} MB)" if limit else "Exited: out of memory"
        return f"Exited with code {self.exit_code}"

    def _meta(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "app": self.app,
            "service": self.service,
            "release": self.release_id,
            "command": self.command,
            "port": self.port,
            "started": self.started_at.isoformat(),
            "oneoff": self.oneoff,
            "cgroups": asdict(self.cgroups) if self.cgroups is not None else None,
        }

    async def spawn(
        self,
        cwd: Path,
        env: dict[str, str],
        venv_bin: Path | None,
        grace: float,
        log_cap: int,
        attach: Streams | None = None,
    ) -> None:
        """Start the shim, and the process under it; `attach`: the process's own standard
        streams (an interactive one-off), instead of output.log."""
        base = {k: os.environ[k] for k in INHERITED if k in os.environ}
        base.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        if venv_bin is not None:
            base["PATH"] = f"{venv_bin}{os.pathsep}{base['PATH']}"
            base["VIRTUAL_ENV"] = str(venv_bin.parent)
        base["PYTHONUNBUFFERED"] = "1"
        full = {**base, **env}
        if self.port is not None:
            full["PORT"] = str(self.port)
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "meta.json").write_text(json.dumps(self._meta()))
        shim_log = (self.directory / "shim.log").open("ab")
        isolation: list[str] = []
        if self.user is not None:
            isolation += ["--user", f"{self.user.uid}:{self.user.gid}"]
        for directory in self.cgroups.dirs if self.cgroups is not None else ():
            isolation += ["--cgroup", directory]
        if attach is not None:
            isolation += ["--attach", attach.mode]
        # The shim runs in a session of its own, with no pipe to the rack, so that it and
        # the app survive the rack. It is a script of the standard library alone, run without
        # site-packages (-S) or the app's PYTHON* variables (-I): its start-up delays the app's.
        self._shim = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                SHIM,
                "--dir",
                str(self.directory),
                "--grace",
                str(grace),
                "--log-cap",
                str(log_cap),
                *isolation,
                "--",
                *shell_argv(self.command),
            ],
            cwd=str(cwd),
            env=full,
            stdin=attach.stdin if attach is not None else subprocess.DEVNULL,
            stdout=attach.output if attach is not None else shim_log,
            stderr=attach.output if attach is not None else shim_log,
            start_new_session=True,
        )
        shim_log.close()
        self.shim_pid = self._shim.pid
        self._started(await self._wait_state())

    @property
    def launched(self) -> bool:
        """Whether its shim was started (and so may run the app), whatever came after."""
        return self._shim is not None

    def _started(self, state: dict[str, Any]) -> None:
        self.pid = state["pid"]
        self.pid_start = state["pid_start"]
        self.shim_start = state["shim_start"]
        self.status = "running"
        self._watch()

    async def abandon(self, grace: float) -> None:
        """Stop a process whose start was interrupted (cancelled: a sibling rollout failed)
        after its shim was launched: once the shim says what it runs, as any stop. Else the
        app would run on, known to nobody, and outlive its app's delete."""
        try:
            self._started(await self._wait_state())
        except Exception:
            if self._shim is not None:
                self._shim.kill()  # it never started the app: nothing else to stop
                self._shim.wait()
            return
        await self.stop(grace)

    async def _wait_state(self) -> dict[str, Any]:
        path = self.directory / "state.json"

        def written() -> dict[str, Any] | None:
            with contextlib.suppress(OSError, ValueError):
                return dict(json.loads(path.read_text()))
            if self._shim is not None and self._shim.poll() is not None:
                raise RuntimeError(
                    f"the shim of {self.id} exited with code {self._shim.returncode}"
                )
            return None

        try:
            return await wait_for(written, SPAWN_TIMEOUT, interval=0.005, what="state.json")
        except WaitTimeout:
            raise RuntimeError(
                f"the shim of {self.id} did not start within {SPAWN_TIMEOUT:g}s"
            ) from None

    @classmethod
    def adopt(cls, directory: Path) -> LocalProcess | None:
        """The process a shim in `directory` still runs, or None when it is gone."""
        try:
            meta = json.loads((directory / "meta.json").read_text())
            state = json.loads((directory / "state.json").read_text())
        except (OSError, ValueError):
            return None
        if state.get("status") == "exited" or not same_process(
            state.get("shim_pid"), state.get("shim_start")
        ):
            return None
        process = cls(
            id=meta["id"],
            app=meta["app"],
            service=meta["service"],
            release_id=meta["release"],
            command=meta["command"],
            port=meta["port"],
            directory=directory,
            started_at=datetime.fromisoformat(meta["started"]),
            oneoff=meta.get("oneoff", False),
            status="stopping" if state["status"] == "stopping" else "running",
            pid=state["pid"],
            pid_start=state["pid_start"],
            shim_pid=state["shim_pid"],
            shim_start=state["shim_start"],
            cgroups=_cgroups(meta.get("cgroups")),
        )
        process.expected_exit = process.status == "stopping"
        # It was serving before the restart (the rollout takes a routed one as healthy): its
        # start-up output is that before the adoption.
        process.healthy_at = utcnow()
        process._watch()
        return process

    def _watch(self) -> None:
        """Learn of the shim's exit at once, child of ours or adopted (a pidfd does both)."""
        assert self.shim_pid is not None
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(self.shim_pid)
        except (OSError, AttributeError):
            self._poller = loop.create_task(self._poll_exit())
            return

        def on_exit() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self._finish()

        loop.add_reader(fd, on_exit)

    async def _poll_exit(self) -> None:
        def gone() -> bool:
            running = same_process(self.shim_pid, self.shim_start)
            return not running or (self._shim is not None and self._shim.poll() is not None)

        await wait_for(gone, math.inf, interval=EXIT_POLL, what=f"the shim of {self.id}")
        self._finish()

    def _finish(self) -> None:
        if self._shim is not None:
            self._shim.poll()  # reap our child
        try:
            state = json.loads((self.directory / "state.json").read_text())
            self.exit_code = state.get("exit_code")
            self.oom_killed = bool(state.get("oom_killed"))
        except (OSError, ValueError):
            self.exit_code = None
        if self.exit_code is None:
            self.exit_code = 137  # the shim itself was killed: the app went with it
        self.status = "exited"
        self.exited_at = utcnow()
        self.exited.set()

    def signal(self, sig: int) -> None:
        if not self.alive:
            return
        if sig == signal.SIGTERM and self.shim_pid is not None:
            # The shim forwards it, then escalates to SIGKILL after the grace period.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.shim_pid, sig)
            return
        if same_process(self.pid, self.pid_start):
            assert self.pid is not None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    async def stop(self, grace: float) -> str:
        """SIGTERM, then SIGKILL after `grace` seconds; says how it ended."""
        self.expected_exit = True
        self.status = "stopping"
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.exited.wait(), timeout=grace + 5)
        except TimeoutError:
            # The shim is stuck or gone: kill the app's process group and the shim directly.
            self.signal(signal.SIGKILL)
            if self.shim_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.shim_pid, signal.SIGKILL)
            await self.exited.wait()
        if self.exit_code in (137, -9):
            return f"Killed after {grace:g}s termination grace"
        return f"Stopped (exit code {self.exit_code})"


def _cgroups(data: Any) -> cg.Cgroups | None:
    if not isinstance(data, dict):
        return None
    return cg.Cgroups(
        tuple(data.get("dirs", ())), data.get("version", 1), data.get("memory_mb"), data.get("cpu")
    )
