"""The shim: a small supervisor of one app process, apart from the rack.

Like containerd's shims and conmon, it owns the process's pipes and records what happens
to it, so the rack can stop, crash or restart while the app keeps serving:

- it starts the command in a session of its own and writes `state.json` (its own PID, the
  app's PID, and both start times, which guard against PID reuse when the rack re-adopts);
- it copies the process's output, line by line with a timestamp, into `output.log`,
  rotated to `output.log.1` past a size cap;
- on SIGTERM it forwards SIGTERM to the process group, then SIGKILL after the grace given
  at start, and records the exit code before exiting itself.

Run as `python -m shipmate.runtimes.local.shim --dir DIR --grace SECONDS -- COMMAND...`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_LOG_CAP = 10 * 1024 * 1024


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot): a PID plus this is unique."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class Log:
    def __init__(self, path: Path, cap: int) -> None:
        self.path = path
        self.cap = cap
        self.file = path.open("ab")
        self.lock = threading.Lock()

    def write(self, line: bytes) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
        with self.lock:
            self.file.write(stamp + b" " + line.rstrip(b"\n") + b"\n")
            self.file.flush()
            if self.file.tell() > self.cap:
                self.file.close()
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                self.file = self.path.open("ab")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shipmate-shim")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--log-cap", type=int, default=DEFAULT_LOG_CAP)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    directory: Path = args.dir
    state_path = directory / "state.json"
    log = Log(directory / "output.log", args.log_cap)

    child = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    state: dict[str, Any] = {
        "shim_pid": os.getpid(),
        "shim_start": proc_start_time(os.getpid()),
        "pid": child.pid,
        "pid_start": proc_start_time(child.pid),
        "status": "running",
        "exit_code": None,
    }
    write_json(state_path, state)

    stopping = threading.Event()
    stopped_at: list[float] = []

    def kill_after_grace() -> None:
        deadline = time.monotonic() + args.grace
        while _group_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)

    def on_term(signum: int, _frame: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        stopped_at.append(time.monotonic())
        state["status"] = "stopping"
        write_json(state_path, state)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        threading.Thread(target=kill_after_grace, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def copy_output() -> None:
        assert child.stdout is not None
        for line in iter(child.stdout.readline, b""):
            log.write(line)

    reader = threading.Thread(target=copy_output, daemon=True)
    reader.start()
    code = child.wait()
    if stopping.is_set():
        # The shell may exit on SIGTERM at once while the app it started finishes its
        # requests: give the rest of the group what is left of the grace period.
        deadline = stopped_at[0] + args.grace
        while _group_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    # What the command left behind in its process group (the shell's children when the shell
    # itself was killed, daemons) dies with it, or it would run on unsupervised.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    # A daemon the command left behind may hold the pipe open: don't wait on it for long.
    reader.join(timeout=2)
    # A process killed by a signal reports -N; shells say 128+N, which is what users know.
    state["exit_code"] = code if code >= 0 else 128 - code
    state["status"] = "exited"
    write_json(state_path, state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
