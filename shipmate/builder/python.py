"""Python build step: install an app's dependencies into a virtualenv inside its source.

The virtualenv lives at `<src>/.venv` so a build directory is self-contained: the runtime
puts `venv_bin(src)` first on PATH and every release of the build sees the same packages.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from shipmate.builder.errors import BuildFailed
from shipmate.common.files import atomic_write
from shipmate.common.pids import proc_start_time, same_process
from shipmate.runtimes.local import isolation

__all__ = ["build_python", "needs_virtualenv", "stop_leftover", "venv_bin"]

VENV_DIR = ".venv"
PIP_FLAGS = ("--disable-pip-version-check", "--no-input", "--progress-bar", "off")


def needs_virtualenv(src: Path) -> bool:
    """Whether the source declares Python dependencies at its root."""
    return (src / "requirements.txt").is_file() or (src / "pyproject.toml").is_file()


def venv_bin(src: Path) -> Path | None:
    """The virtualenv's bin directory, if the build created one."""
    bin_dir = src / VENV_DIR / "bin"
    return bin_dir if bin_dir.is_dir() else None


def build_python(
    src: Path,
    log: Callable[[str], None],
    python: str = sys.executable,
    timeout: float = 1800,
    pid_file: Path | None = None,
    app: str | None = None,
    home: Path | None = None,
    root: Path | None = None,
) -> None:
    """Create `src/.venv` and pip-install the app's requirements, streaming output to `log`.

    With `app` (of the rack in `home`), when the rack runs as root, the install runs as the
    app's user (user code runs in `pip install`: setup.py, build backends), and the build is
    then the app's to read and nobody's to change. Raises BuildFailed when a step exits
    non-zero or the whole build exceeds `timeout`. While a step runs, `pid_file` names its
    process group ("PID START_TIME"), so a rack killed mid-build can stop it at its next
    start (see `stop_leftover`). `root` is the build that holds `src` (a service's `build:`
    directory), which the app's user must be able to pass through.
    """
    src = Path(src)
    user = isolation.ensure_user(app, home) if app is not None and home is not None else None
    if user is not None and root is not None and root != src:
        # A service's build directory inside the build: its user must get there.
        isolation.grant_passage(root, src, user)
    try:
        _build(src, log, python, timeout, user, pid_file)
    finally:
        if user is not None:
            isolation.grant_build(src, user)


def _build(
    src: Path,
    log: Callable[[str], None],
    python: str,
    timeout: float,
    user: isolation.AppUser | None,
    pid_file: Path | None,
) -> None:
    if not needs_virtualenv(src):
        log("No requirements.txt or pyproject.toml: nothing to install")
        return

    deadline = time.monotonic() + timeout
    venv = src / VENV_DIR
    if venv.is_symlink() or venv.exists():
        # The CLI never uploads .venv, but an upload through the API could carry one built
        # for another machine (or planted): start from scratch.
        log(f"Removing uploaded {VENV_DIR}")
        if venv.is_dir() and not venv.is_symlink():
            shutil.rmtree(venv)
        else:
            venv.unlink()

    env = _build_env(venv)
    if user is not None:
        isolation.grant_build(src, user, writable=True)
        python = _reachable_python(python)
        # The app's user has no home: no pip cache, no user configuration to read.
        env["PIP_NO_CACHE_DIR"] = "1"
        env["HOME"] = str(src)
    log(f"Creating virtualenv {VENV_DIR}")
    code = _stream(
        [python, "-m", "venv", VENV_DIR],
        "python -m venv .venv",
        src,
        env,
        log,
        deadline,
        timeout,
        pid_file,
        user,
    )
    if code != 0:
        raise BuildFailed(
            f"creating the virtualenv failed with exit code {code}; see the build log"
        )

    # `python -m pip` rather than `.venv/bin/pip`: the pip script's shebang holds the full
    # venv path, which breaks past the kernel's shebang length limit on deep build paths.
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", *PIP_FLAGS]
    if (src / "requirements.txt").is_file():
        log("Installing requirements.txt")
        args = ["-r", "requirements.txt"]
    else:
        log("Installing pyproject.toml (pip install .)")
        args = ["."]
    shown = " ".join([".venv/bin/python -m pip install", *PIP_FLAGS, *args])
    code = _stream([*pip, *args], shown, src, env, log, deadline, timeout, pid_file, user)
    if code != 0:
        raise BuildFailed(f"pip install failed with exit code {code}; see the build log")
    log("Dependencies installed")


def _reachable_python(python: str) -> str:
    """`python`, or the system's python3 when the app's user cannot run it (an interpreter
    under a private home, as pyenv's in /root)."""
    real = Path(python).resolve()
    for directory in [*real.parents]:
        if not os.stat(directory).st_mode & 0o001:
            return shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or python
    return python


def _build_env(venv: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The rack's own interpreter settings must not leak into the app's install.
    for key in ("PYTHONHOME", "PYTHONPATH", "PIP_USER", "PIP_REQUIRE_VIRTUALENV"):
        env.pop(key, None)
    env["VIRTUAL_ENV"] = str(venv.resolve())
    env["PYTHONUNBUFFERED"] = "1"  # so pip's lines reach the log as they are printed
    env["PIP_NO_INPUT"] = "1"
    return env


def _stream(
    command: Sequence[str],
    shown: str,
    cwd: Path,
    env: dict[str, str],
    log: Callable[[str], None],
    deadline: float,
    timeout: float,
    pid_file: Path | None = None,
    user: isolation.AppUser | None = None,
) -> int:
    """Run `command`, passing each output line to `log` as it arrives; return the exit code.

    `shown` is the command as the log displays it: relative to the build, without the
    rack's own paths.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise BuildFailed(f"build timed out after {timeout:g} seconds")
    log("$ " + shown)
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Own process group, so a timeout kills pip's children (compilers, build backends)
        # along with it.
        start_new_session=True,
        # subprocess drops the supplementary groups, then the gid, then the uid.
        user=user.uid if user is not None else None,
        group=user.gid if user is not None else None,
        extra_groups=[] if user is not None else None,
    )
    if pid_file is not None:
        atomic_write(pid_file, f"{proc.pid} {proc_start_time(proc.pid)}\n".encode())
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        _kill_group(proc)

    # readline() blocks, so the deadline is enforced from a timer thread: killing the group
    # closes the pipe, which ends the read loop below.
    timer = threading.Timer(remaining, kill)
    timer.daemon = True
    timer.start()
    try:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            log(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            # `log` raised (e.g. the client went away): don't leave pip running.
            _kill_group(proc)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
    if timed_out.is_set():
        raise BuildFailed(f"build timed out after {timeout:g} seconds")
    return code


def stop_leftover(pid_file: Path) -> None:
    """Kill the step a killed rack left running (it runs in a session of its own)."""
    try:
        pid, start = (int(word) for word in pid_file.read_text().split())
    except (OSError, ValueError):
        return
    if same_process(pid, start):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
