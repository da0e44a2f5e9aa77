"""Stopping every app process of a rack whose API is down (`shipmate rack stop --all`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from shipmate.runtimes.local.shim import proc_start_time


def _shims(run_dir: Path) -> list[dict[str, int]]:
    found = []
    for state_file in run_dir.glob("*/*/state.json"):
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(state_file.read_text())
            if state.get("status") != "exited" and proc_start_time(state["shim_pid"]) == state.get(
                "shim_start"
            ):
                found.append(state)
    return found


def stop_all_processes(home: Path, timeout: float = 15.0) -> int:
    """SIGTERM every shim under `home` (each stops its app), SIGKILL what is left after
    `timeout`; returns how many processes were running. Call only once the rack is down,
    or it would replace what this stops."""
    shims = _shims(home / "run")
    for state in shims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(state["shim_pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(proc_start_time(s["shim_pid"]) == s["shim_start"] for s in shims):
            return len(shims)
        time.sleep(0.05)
    for state in shims:
        for pid, kill in ((state["pid"], os.killpg), (state["shim_pid"], os.kill)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
    return len(shims)
