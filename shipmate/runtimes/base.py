"""The Runtime interface: desired state in, observed processes and events out.

A runtime is told what an app should run (one release, with a count and health check per
service) and converges on it with a rolling update, reporting each step as an event. The
local runtime performs the rolling update itself; a Swarm or Kubernetes runtime would hand
the same desired state to the engine (a service update, a Deployment) and translate what
the engine reports into the same events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from shipmate.domain.traffic import Counts


@dataclass(frozen=True)
class HealthCheck:
    path: str
    grace: float
    interval: float
    timeout: float


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    command: str
    port: int | None  # None: not routed, healthy = still running after grace
    health: HealthCheck
    count: int
    minimum: int  # % of count that must stay healthy during a rollout
    maximum: int  # % of count that may run during a rollout
    termination_grace: float
    environment: Mapping[str, str] = field(default_factory=dict)
    # The service's `build:` directory, relative to the build: where its processes run
    # and (Python) its virtualenv lives.
    build: str = "."
    # scale.memory (MB) and scale.cpu (CPU units, 1024 = one CPU); None: no limit.
    memory: int | None = None
    cpu: int | None = None
    # On a container runtime, the image the service runs (shipmate.domain.images.image_ref);
    # "" on the local runtime, which runs `command` in `build`.
    image: str = ""


@dataclass(frozen=True)
class DesiredState:
    app: str
    release_id: str
    build_id: str
    directory: Path
    services: tuple[ServiceSpec, ...]
    deadline: float  # seconds the rollout may take before it counts as failed
    # A restart: processes of this release started before this moment are replaced too.
    restart_before: datetime | None = None
    restart_services: tuple[str, ...] = ()  # which services restart_before applies to; () = all

    @classmethod
    def nothing(cls, app: str) -> DesiredState:
        """No process at all: what an app with no active release runs."""
        return cls(app, "", "", Path("."), (), 30.0)


@dataclass(frozen=True)
class ProcessInfo:
    id: str
    app: str
    service: str
    release_id: str
    status: str  # starting, running, stopping, exited
    pid: int | None
    port: int | None
    started_at: datetime
    command: str
    memory: int | None = None  # bytes in use, when the runtime can tell


@dataclass(frozen=True)
class Traffic:
    """What the router counted for one routed process since it started counting."""

    process_id: str
    release_id: str
    counts: Counts


@dataclass(frozen=True)
class ProcessDiagnosis:
    """What a runtime knows of one of an app's processes, running or recently exited, for
    `deploy-debug`: enough to tell after a revert why a promotion's processes failed."""

    id: str
    service: str
    release_id: str
    status: str  # starting, running, stopping, exited
    started_at: datetime
    command: str
    port: int | None = None  # the port it was given ($PORT); None: not routed
    healthy_at: datetime | None = None  # when it first passed its health check; None: never
    health_problem: str | None = None  # the last failed check (`GET /health: HTTP 404`)
    exit_code: int | None = None  # once exited
    exited_at: datetime | None = None
    stopped: bool = False  # the platform stopped it (a stop, a revert): it did not just exit
    oom_killed: bool = False
    memory_limit: int | None = None  # MB
    logs: tuple[Path, ...] = ()  # its output files, oldest first: "<RFC 3339> <text>" lines


class EventSink(Protocol):
    def __call__(self, obj: str, message: str) -> None: ...


class AppEventSink(Protocol):
    """Where a runtime reports what happens outside any promotion (crashes, restarts)."""

    def __call__(self, app: str, obj: str, message: str) -> None: ...


@dataclass(frozen=True)
class LogSource:
    process_id: str
    service: str
    path: Path  # lines of "<RFC 3339 with fraction> <output line>"


@dataclass(frozen=True)
class Terminal:
    """The size of the user's terminal, for a one-off run in a pseudo-terminal of that size."""

    rows: int
    cols: int


class Attached(Protocol):
    """An interactive one-off process: what the user types goes in, what it prints comes out.

    Without a terminal its output and error come as one stream; with one, every byte (Ctrl-C,
    Ctrl-D included) goes to the terminal, whose line discipline does the rest."""

    async def read(self) -> bytes:
        """The next output, as soon as there is some; b"" once the process is done with it."""

    async def write(self, data: bytes) -> None:
        """To the process's standard input."""

    def close_stdin(self) -> None:
        """End of input: what reads standard input sees end of file (no-op on a terminal)."""

    def resize(self, terminal: Terminal) -> None:
        """The user's window changed size."""

    def signal(self, signum: int) -> None:
        """Send a signal to the process and what it started."""

    async def wait(self) -> int:
        """Its exit code, once it has exited."""

    async def close(self) -> None:
        """Stop the process if it still runs, and let go of its streams."""


class RolloutFailed(Exception):
    """The new processes did not all become healthy; kind is "deadline" or "error"."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class Runtime(Protocol):
    name: str

    async def apply(self, desired: DesiredState, emit: EventSink) -> None:
        """Converge the app on `desired` with a rolling update; raise RolloutFailed."""

    async def processes(self, app: str) -> list[ProcessInfo]:
        """The app's processes as observed now."""

    async def traffic(self, app: str) -> list[Traffic]:
        """The router's cumulative counts for each routed process of the app that runs."""

    async def canary(self, desired: DesiredState, percent: int, emit: EventSink) -> None:
        """Start `desired`'s routed services beside the processes that serve now (a share of
        each service's count, at least one) and send them `percent`% of its requests once
        healthy; raise RolloutFailed. `apply` of the same release completes it."""

    async def end_canary(self, app: str, keep: bool) -> None:
        """Stop sending a share to the canary: `keep` makes its processes ordinary ones (an
        `apply` of their release follows), else every request goes back to the others (an
        `apply` of the previous release stops the canary's processes)."""

    async def remove(self, app: str, emit: EventSink) -> None:
        """Stop every process of the app and forget its routes."""

    async def adopt(self) -> list[ProcessInfo]:
        """After a rack restart: take charge again of the processes that kept running."""

    async def stop_process(self, app: str, process_id: str, emit: EventSink) -> None:
        """Stop one process; the runtime replaces it if the app still wants it."""

    def run(
        self, desired: DesiredState, service: str, command: str, *, release_phase: bool = False
    ) -> AsyncIterator[tuple[str, str | int]]:
        """A one-off process: ("line", text) for each line of output, then ("exit", code).

        `release_phase`: the release command of a promotion. Its output is the promotion's
        (the caller records it as events), so it is not one of `log_sources`, and a rack
        restarted while it ran finds it with `stop_release_commands`.
        """

    async def attach(
        self, desired: DesiredState, service: str, command: str, terminal: Terminal | None
    ) -> Attached:
        """An interactive one-off process, in a pseudo-terminal when `terminal` is given; the
        caller closes it. It ends with the session: a one-off nobody can reach is stopped."""

    async def stop_release_commands(self, app: str) -> list[tuple[ProcessInfo, str]]:
        """Stop the app's release commands still running and wait until they have exited:
        each with how it ended (`Stopped (exit code 143)`). A rack that died during a release
        phase left its command to its shim; reverting that promotion must not let it finish."""

    def log_sources(self, app: str) -> list[LogSource]:
        """Output files of the app's processes, running or recently exited."""

    async def diagnose(self, app: str) -> list[ProcessDiagnosis]:
        """The app's processes (one-offs left out), running or recently exited (those a
        failed promotion's revert stopped among them), with what each went through."""

    async def shutdown(self) -> None:
        """Stop everything this runtime started."""
