"""Stopping every app process of a rack whose API is down (`shipmate rack stop --all`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

from shipmate.common.pids import same_process
from shipmate.common.waiting import WaitTimeout, poll_until


def _running(state: dict[str, Any]) -> bool:
    return same_process(state.get("shim_pid"), state.get("shim_start"))


def _shims(run_dir: Path) -> list[dict[str, Any]]:
    found = []
    for state_file in run_dir.glob("*/*/state.json"):
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(state_file.read_text())
            if state.get("status") != "exited" and _running(state):
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
    try:
        poll_until(lambda: not any(_running(s) for s in shims), timeout, what="the shims")
        return len(shims)
    except WaitTimeout:
        pass
    for state in shims:
        for pid, kill in ((state["pid"], os.killpg), (state["shim_pid"], os.kill)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
    return len(shims)
