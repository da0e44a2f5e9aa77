"""Memory and CPU limits of app processes: a cgroup per process.

`scale.memory` (MB) and `scale.cpu` (CPU units, 1024 = one CPU) are applied as a container
engine applies them: cgroup v2 where the machine has it (`memory.max`, `cpu.weight`,
`cpu.max` under /sys/fs/cgroup/shipmate/<app>/<process>/), v1 otherwise (the same path under
the `memory` and `cpu` hierarchies: `memory.limit_in_bytes` and `memory.memsw.limit_in_bytes`,
`cpu.shares`, `cpu.cfs_quota_us`/`cpu.cfs_period_us`). The rack creates the cgroups; the
shim moves the app into them before it executes the command, and after the exit reads
whether the kernel's OOM killer struck, then removes them.

Every process gets its cgroups when the rack can make them, limits or not: they also give
`ps` each process's memory use.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
GROUP = "shipmate"
# The CFS period: a quota of `cpu / 1024` of it per period is `cpu / 1024` CPUs.
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Cgroups:
    """The cgroups of one process: their directories, and the limits given at creation."""

    dirs: tuple[str, ...]
    version: int
    memory_mb: int | None = None
    cpu: int | None = None


def version(root: Path = ROOT) -> int | None:
    """2 for the unified hierarchy, 1 for v1 with memory and cpu, None without either."""
    if (root / "cgroup.controllers").exists():
        controllers = (root / "cgroup.controllers").read_text().split()
        return 2 if {"memory", "cpu"} <= set(controllers) else None
    if (root / "memory" / "memory.limit_in_bytes").exists() and (root / "cpu").is_dir():
        return 1
    return None


def create(
    app: str, process_id: str, memory_mb: int | None, cpu: int | None, root: Path = ROOT
) -> Cgroups | None:
    """The process's cgroups with its limits set; None when the machine gives no cgroups."""
    found = version(root)
    if found is None or os.geteuid() != 0:
        return None
    try:
        if found == 2:
            return _create_v2(root, app, process_id, memory_mb, cpu)
        return _create_v1(root, app, process_id, memory_mb, cpu)
    except OSError:
        return None


def _create_v1(
    root: Path, app: str, process_id: str, memory_mb: int | None, cpu: int | None
) -> Cgroups:
    memory = root / "memory" / GROUP / app / process_id
    cpu_dir = root / "cpu" / GROUP / app / process_id
    _mkdir(memory)
    _mkdir(cpu_dir)
    if memory_mb is not None:
        limit = str(memory_mb * 1024 * 1024)
        _write(memory / "memory.limit_in_bytes", limit)
        # With swap accounting, the same limit on memory and swap together: a process over
        # its limit is killed rather than swapped out.
        if (memory / "memory.memsw.limit_in_bytes").exists():
            _write(memory / "memory.memsw.limit_in_bytes", limit)
    if cpu is not None:
        _write(cpu_dir / "cpu.shares", str(max(2, cpu)))
        _write(cpu_dir / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(cpu_dir / "cpu.cfs_quota_us", str(max(1000, cpu * CPU_PERIOD_US // 1024)))
    return Cgroups((str(memory), str(cpu_dir)), 1, memory_mb, cpu)


def _create_v2(
    root: Path, app: str, process_id: str, memory_mb: int | None, cpu: int | None
) -> Cgroups:
    directory = root / GROUP / app / process_id
    _mkdir(directory)
    # Controllers reach a cgroup only through every parent's subtree_control.
    for parent in (root, root / GROUP, root / GROUP / app):
        with contextlib.suppress(OSError):
            _write(parent / "cgroup.subtree_control", "+memory +cpu")
    if memory_mb is not None:
        _write(directory / "memory.max", str(memory_mb * 1024 * 1024))
        with contextlib.suppress(OSError):
            _write(directory / "memory.swap.max", "0")
    if cpu is not None:
        # cpu.weight is 1..10000 with 100 the default, as 1024 is cpu.shares' default.
        _write(directory / "cpu.weight", str(min(10000, max(1, cpu * 100 // 1024))))
        _write(directory / "cpu.max", f"{max(1000, cpu * CPU_PERIOD_US // 1024)} {CPU_PERIOD_US}")
    return Cgroups((str(directory),), 2, memory_mb, cpu)


def _mkdir(directory: Path) -> None:
    """The process's cgroup, readable by the app (runtimes size their heaps by its limit, as
    in a container); the ones above it passable, not listable (the other apps' names)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    directory.parent.chmod(0o711)
    directory.parent.parent.chmod(0o711)


def _write(path: Path, value: str) -> None:
    with path.open("w") as f:
        f.write(value)


def memory_used(groups: Cgroups) -> int | None:
    """Bytes the process (and its children) use now, page cache included, as `docker stats`."""
    name = "memory.current" if groups.version == 2 else "memory.usage_in_bytes"
    for directory in groups.dirs:
        with contextlib.suppress(OSError, ValueError):
            return int(Path(directory, name).read_text())
    return None


def remove(groups: Cgroups) -> None:
    """The cgroups of a process that never started (the shim removes those of the others)."""
    for directory in groups.dirs:
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def remove_app(app: str, root: Path = ROOT) -> None:
    """The app's cgroup directories, once its processes are gone (the shims remove theirs)."""
    for parent in (root / "memory" / GROUP / app, root / "cpu" / GROUP / app, root / GROUP / app):
        if not parent.is_dir():
            continue
        for child in parent.iterdir():
            if child.is_dir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        with contextlib.suppress(OSError):
            parent.rmdir()
