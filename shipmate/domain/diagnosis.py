"""`deploy-debug`'s judgement of a process: what state it is in, and what to do about it.

Pure functions of what a runtime observed (a process's status, health checks, exit, output),
so that every runtime's processes are judged, and hinted at, the same way.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar


class ProcessState(enum.StrEnum):
    HEALTHY = "healthy"  # running, and passed its health check
    STARTING = "starting"  # running, not yet healthy, no check has failed past its grace
    UNHEALTHY = "unhealthy"  # failing its health check (or stopped while failing it)
    CRASH_LOOPING = "crash-looping"  # exited on its own again and again, restarted each time
    OOM_KILLED = "oom-killed"  # the kernel killed it for going over its memory limit
    EXITED = "exited"  # exited on its own
    STOPPED = "stopped"  # stopped by the platform after it had been healthy (replaced)


# States that are no problem: shown by `deploy-debug --all` only.
FINE = frozenset({ProcessState.HEALTHY, ProcessState.STOPPED})


def classify(
    *,
    status: str,
    healthy: bool,
    stopped: bool,
    oom_killed: bool,
    health_problem: str | None,
    in_grace: bool,
    crashes: int,
) -> ProcessState:
    """The state of one process.

    `status`: starting, running, stopping or exited; `healthy`: it passed its check once;
    `stopped`: the platform stopped it (it did not exit on its own); `in_grace`: still within
    its health check's grace; `crashes`: how many times in a row its service's processes of
    this release exited on their own, this one included.
    """
    if oom_killed:
        return ProcessState.OOM_KILLED
    if crashes >= 2 and ((status == "exited" and not stopped) or not healthy):
        return ProcessState.CRASH_LOOPING
    if status == "exited" and not stopped:
        return ProcessState.EXITED
    if healthy:
        return ProcessState.STOPPED if status in ("stopping", "exited") else ProcessState.HEALTHY
    if status in ("stopping", "exited"):
        return ProcessState.UNHEALTHY  # stopped before it was ever healthy: a deadline
    if health_problem is None or in_grace:
        return ProcessState.STARTING
    return ProcessState.UNHEALTHY


_KEY_ERROR = re.compile(r"""KeyError: ['"]([A-Za-z_][A-Za-z0-9_]*)['"]""")
_UNSET = re.compile(r"\b([A-Z][A-Z0-9_]*)(?: is not set| must be set|: parameter not set)")
_NOT_FOUND = re.compile(r"(?:^|: )([^\s:]+): (?:command )?not found$")
_DENIED = re.compile(r"(?:^|: )([^\s:]+): Permission denied$")
_CHECK = re.compile(r"^GET (\S+): (.+)$")
# What httpx names a refused connection (and the local runtime a port nobody listens on).
_REFUSED = frozenset({"ConnectError"})
_TIMEOUT = frozenset({"ReadTimeout", "ConnectTimeout", "PoolTimeout", "WriteTimeout"})


def missing_key(output: Sequence[str]) -> str | None:
    """The environment variable the output says the process lacked (`KeyError: 'KEY'`)."""
    for line in reversed(output):
        found = _KEY_ERROR.search(line) or _UNSET.search(line)
        if found:
            return found.group(1)
    return None


def missing_command(output: Sequence[str], exit_code: int | None, command: str) -> str | None:
    """The command the shell did not find (`sh: 1: gunicorn: not found`, exit code 127)."""
    for line in reversed(output):
        found = _NOT_FOUND.search(line.strip())
        if found:
            return found.group(1)
    if exit_code == 127:
        words = command.split()
        return words[0] if words else command
    return None


def unrunnable_command(output: Sequence[str], exit_code: int | None) -> str | None:
    """The command the shell found but could not run (`exec: x: Permission denied`, 126)."""
    if exit_code != 126:
        return None
    for line in reversed(output):
        found = _DENIED.search(line.strip())
        if found:
            return found.group(1)
    return None


def parse_check(problem: str | None) -> tuple[str, str] | None:
    """(path, result) of a failed check's description `GET /health: HTTP 404`."""
    found = _CHECK.match(problem or "")
    return (found.group(1), found.group(2)) if found else None


def hint(
    state: ProcessState,
    *,
    app: str,
    output: Sequence[str],
    exit_code: int | None = None,
    health_problem: str | None = None,
    port: int | None = None,
    command: str = "",
    memory_limit: int | None = None,
    healthy: bool = False,
) -> str | None:
    """What to do about a process in `state`, from what it printed and how it failed."""
    if state in FINE or state is ProcessState.STARTING:
        return None
    if state is ProcessState.OOM_KILLED:
        limit = f" ({memory_limit} MB)" if memory_limit else ""
        return (
            f"it went over its memory limit{limit}: raise scale.memory in shipmate.yml, "
            "or make it use less"
        )
    key = missing_key(output)
    if key is not None:
        return (
            f"its environment lacks {key}: `shipmate env set {key}=... --promote -a {app}` "
            "(and list it under environment: in shipmate.yml, so that a promotion without "
            "it is refused)"
        )
    if state in (ProcessState.EXITED, ProcessState.CRASH_LOOPING):
        denied = unrunnable_command(output, exit_code)
        if denied is not None:
            return (
                f"its command could not be run: {denied} (permission denied, exit code 126); "
                "check command: in shipmate.yml, and that the app's user may run it"
            )
        name = missing_command(output, exit_code, command)
        if name is not None:
            return (
                f"its command was not found: {name} (exit code 127); check command: in "
                "shipmate.yml, and that the build installs it"
            )
        when = "after it had been healthy" if healthy else "before it was ever healthy"
        why = "its output above says why" if output else "it printed nothing"
        return f"it exited with code {exit_code} {when}: {why}"
    check = parse_check(health_problem)
    if check is None:
        return (
            "it was not healthy by the promotion's deadline: make it start faster, or give "
            "it longer (--wait, or deployment: deadline: in shipmate.yml)"
        )
    path, result = check
    if result in _REFUSED:
        where = f"$PORT ({port})" if port is not None else "$PORT"
        return (
            f"it did not listen on {where}: make it bind 0.0.0.0:$PORT or 127.0.0.1:$PORT "
            "(shipmate gives each process its own port)"
        )
    if result == "HTTP 404":
        return (
            f"its health path {path} answered 404: serve {path} (2xx or 3xx), or set "
            "health: in shipmate.yml to a path it serves"
        )
    if result in _TIMEOUT:
        return (
            f"its health path {path} did not answer in time ({result}): answer it faster, "
            "or raise health: timeout: in shipmate.yml"
        )
    return f"its health path {path} answered {result.removeprefix('HTTP ')}: see its output"


def parse_output_line(raw: str) -> tuple[datetime, str] | None:
    """A line of a process's output file, `<RFC 3339> <text>`: (time, text); None if not."""
    stamp, _, text = raw.partition(" ")
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")), text
    except ValueError:
        return None


def before(
    lines: Sequence[tuple[datetime, str]], healthy_at: datetime | None, count: int
) -> list[tuple[datetime, str]]:
    """The last `count` lines printed before `healthy_at` (all of them when never healthy),
    blank ones left out."""
    kept = [
        (when, text)
        for when, text in lines
        if text.strip() and (healthy_at is None or when < healthy_at)
    ]
    return kept[-count:] if count > 0 else []


class Exited(Protocol):
    """What folding crashes needs to know of a process."""

    @property
    def id(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def release_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def stopped(self) -> bool: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def exited_at(self) -> datetime | None: ...


P = TypeVar("P", bound=Exited)


def crashed(process: Exited) -> bool:
    """Whether it exited on its own (nobody stopped it)."""
    return process.status == "exited" and not process.stopped


@dataclass(frozen=True)
class Chain(Generic[P]):
    """A process and the crashed processes it replaced, oldest first (each replaced the one
    before it)."""

    process: P
    replaced: tuple[P, ...]

    @property
    def crashes(self) -> int:
        """Crashes in a row, this process included if it crashed too."""
        return len(self.replaced) + (1 if crashed(self.process) else 0)


def fold_crashes(processes: Sequence[P]) -> list[Chain[P]]:
    """Each process with the crashes it replaced folded into it: a crashed process is
    replaced by the first process of its service and release started after it exited."""
    ordered = sorted(processes, key=lambda p: (p.started_at, p.id))
    successor: dict[str, P] = {}
    taken: set[str] = set()
    for dead in sorted(
        (p for p in ordered if crashed(p) and p.exited_at is not None),
        key=lambda p: (p.exited_at, p.id),
    ):
        assert dead.exited_at is not None
        for later in ordered:
            if (
                later.id not in taken
                and later.id != dead.id
                and (later.service, later.release_id) == (dead.service, dead.release_id)
                and later.started_at >= dead.exited_at
            ):
                successor[dead.id] = later
                taken.add(later.id)
                break
    predecessor = {later.id: dead_id for dead_id, later in successor.items()}
    by_id = {p.id: p for p in ordered}
    chains = []
    for process in ordered:
        if process.id in successor:
            continue  # folded into the one that replaced it
        replaced: list[P] = []
        current = process.id
        while current in predecessor:
            current = predecessor[current]
            replaced.append(by_id[current])
        chains.append(Chain(process, tuple(reversed(replaced))))
    return chains
