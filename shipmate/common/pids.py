"""Is this PID still the process we started? A PID plus its kernel start time says so.

PIDs are reused: a PID alone read back from a file after a restart may name a stranger.
(runtimes/local/shim.py keeps a copy of `proc_start_time`: it runs as `python -I -S` and can
import nothing but the standard library.)
"""

from __future__ import annotations

import os


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat.rsplit(")", 1)[1].split()


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def is_zombie(pid: int) -> bool:
    """A process that exited and was not reaped: it answers kill(pid, 0) but does not run."""
    fields = _stat_fields(pid)
    return fields is not None and fields[:1] == ["Z"]


def pid_alive(pid: int) -> bool:
    """True when `pid` names a running (not zombie) process, ours or another user's."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not is_zombie(pid)


def same_process(pid: int | None, start: int | None) -> bool:
    """True when `pid` runs and is the process that started at `start` (not a reused PID)."""
    return pid is not None and start is not None and proc_start_time(pid) == start
