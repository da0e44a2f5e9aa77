"""One app process on this machine: spawn, output capture, health, stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from shipmate.domain.humanize import utcnow
from shipmate.runtimes.base import ProcessInfo

# Variables of the rack's own environment that a process needs to run at all; everything
# else a process sees comes from its release, as on Heroku and Convox.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalProcess:
    id: str
    app: str
    service: str
    release_id: str
    command: str
    port: int | None
    log_path: Path
    started_at: datetime = field(default_factory=utcnow)
    proc: asyncio.subprocess.Process | None = None
    status: str = "starting"  # starting, running, stopping, exited
    exit_code: int | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    expected_exit: bool = False
    health_problem: str | None = None  # the last failed check, while not yet healthy
    _tasks: tuple[asyncio.Task[None], ...] = ()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def alive(self) -> bool:
        return not self.exited.is_set()

    @property
    def backend(self) -> str:
        return f"127.0.0.1:{self.port}"

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
        )

    async def spawn(self, cwd: Path, env: dict[str, str], venv_bin: Path | None) -> None:
        base = {k: os.environ[k] for k in INHERITED if k in os.environ}
        base.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        if venv_bin is not None:
            base["PATH"] = f"{venv_bin}{os.pathsep}{base['PATH']}"
            base["VIRTUAL_ENV"] = str(venv_bin.parent)
        base["PYTHONUNBUFFERED"] = "1"
        full = {**base, **env}
        if self.port is not None:
            full["PORT"] = str(self.port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A session of its own, so a stop signal reaches the command's children too.
        self.proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            self.command,
            cwd=str(cwd),
            env=full,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self.status = "running"
        loop = asyncio.get_running_loop()
        self._tasks = (loop.create_task(self._pump()), loop.create_task(self._wait()))

    async def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.log_path.open("ab") as log:
            while line := await self.proc.stdout.readline():
                log.write(line)
                log.flush()

    async def _wait(self) -> None:
        assert self.proc is not None
        self.exit_code = await self.proc.wait()
        self.status = "exited"
        self.exited.set()

    def signal(self, sig: int) -> None:
        if self.proc is None or not self.alive:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def stop(self, grace: float) -> str:
        """SIGTERM, then SIGKILL after `grace` seconds; says how it ended."""
        self.expected_exit = True
        self.status = "stopping"
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.exited.wait(), timeout=grace)
            return f"Stopped (exit code {self.exit_code})"
        except TimeoutError:
            self.signal(signal.SIGKILL)
            await self.exited.wait()
            return f"Killed after {grace:g}s termination grace"
