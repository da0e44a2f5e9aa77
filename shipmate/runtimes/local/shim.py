"""The shim: a small supervisor of one app process, apart from the rack.

Like containerd's shims and conmon, it owns the process's pipes and records what happens
to it, so the rack can stop, crash or restart while the app keeps serving:

- it starts the command in a session of its own and writes `state.json` (its own PID, the
  app's PID, and both start times, which guard against PID reuse when the rack re-adopts);
- it copies the process's output, line by line with a timestamp, into `output.log`,
  rotated to `output.log.1` past a size cap;
- on SIGTERM it forwards SIGTERM to the process group, then SIGKILL after the grace given
  at start, and records the exit code before exiting itself.

Run as `python -I -S shim.py --dir DIR --grace SECONDS --log-cap BYTES -- COMMAND...`: a
file of the standard library only, so that it needs neither site-packages nor PYTHONPATH.

`--attach pipe` or `--attach tty` (an interactive `shipmate run`): the process gets the shim's
own standard input, output and error, which the rack opened as pipes or as a pseudo-terminal
it relays to the user; with `tty`, that terminal is the process's controlling terminal, so
Ctrl-C and window changes reach it as on a terminal of its own. Nothing goes to output.log.

Every process of a rollback waits for its shim to start the app, so the shim starts it before
anything else: it imports only `os`, `sys` and `signal` until the app runs (the rest of the
standard library it uses costs more than the interpreter's own start-up).
"""

from __future__ import annotations

import os
import signal
import sys

DEFAULT_LOG_CAP = 10 * 1024 * 1024
USAGE = (
    "usage: shim.py --dir DIR [--grace SECONDS] [--log-cap BYTES] [--user UID:GID]"
    " [--cgroup DIR]... [--attach pipe|tty] -- COMMAND..."
)


# A copy of shipmate.common.pids.proc_start_time: the shim runs as `python -I -S` from its
# own file and can import nothing of shipmate's (nor anything outside the standard library).
def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot): a PID plus this is unique."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
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


def write_json(path: str, data: dict[str, object]) -> None:
    """Best effort: with its directory removed (an app deleted while the rack had lost sight
    of it), the shim must still stop its process on SIGTERM, not die of the write."""
    import json

    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(data))
        os.replace(tmp, path)
    except OSError:
        pass


class Log:
    def __init__(self, path: str, cap: int) -> None:
        import threading

        self.path = path
        self.cap = cap
        self.file = open(path, "ab")  # noqa: SIM115 (open for the life of the shim)
        self.lock = threading.Lock()

    def write(self, line: bytes) -> None:
        from datetime import UTC, datetime

        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
        with self.lock:
            self.file.write(stamp + b" " + line.rstrip(b"\n") + b"\n")
            self.file.flush()
            if self.file.tell() > self.cap:
                self.file.close()
                os.replace(self.path, self.path + ".1")
                self.file = open(self.path, "ab")  # noqa: SIM115


class Options:
    def __init__(self) -> None:
        self.directory = ""
        self.grace = 30.0
        self.log_cap = DEFAULT_LOG_CAP
        self.user: tuple[int, int] | None = None
        self.cgroups: list[str] = []
        self.attach = ""  # "", "pipe" or "tty"
        self.command: list[str] = []


def _parse(argv: list[str]) -> Options:
    """The options; argparse alone takes longer to import than the interpreter takes to
    start."""
    options = {
        "--dir": "",
        "--grace": "30",
        "--log-cap": str(DEFAULT_LOG_CAP),
        "--user": "",
        "--attach": "",
    }
    parsed = Options()
    rest = list(argv)
    while rest and rest[0] != "--" and rest[0].startswith("--"):
        name, eq, value = rest.pop(0).partition("=")
        if (name not in options and name != "--cgroup") or (not eq and not rest):
            sys.exit(f"{USAGE}\nshim.py: error: bad option {name}")
        value = value if eq else rest.pop(0)
        if name == "--cgroup":
            parsed.cgroups.append(value)
        else:
            options[name] = value
    parsed.command = rest[1:] if rest[:1] == ["--"] else rest
    try:
        parsed.grace, parsed.log_cap = float(options["--grace"]), int(options["--log-cap"])
        if options["--user"]:
            uid, _, gid = options["--user"].partition(":")
            parsed.user = (int(uid), int(gid))
    except ValueError:
        sys.exit(f"{USAGE}\nshim.py: error: --grace, --log-cap and --user take numbers")
    if not options["--dir"] or not parsed.command:
        sys.exit(f"{USAGE}\nshim.py: error: --dir and a command are required")
    if options["--attach"] not in ("", "pipe", "tty"):
        sys.exit(f"{USAGE}\nshim.py: error: --attach takes pipe or tty")
    parsed.attach = options["--attach"]
    parsed.directory = options["--dir"]
    return parsed


def _spawn(command: list[str]) -> tuple[int, int]:
    """Start `command` in a session of its own, output to a pipe: (pid, read end)."""
    read, write = os.pipe()  # both close on exec; the child gets `write` as 1 and 2
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        pid = os.posix_spawnp(
            command[0],
            command,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, write, 1),
                (os.POSIX_SPAWN_DUP2, write, 2),
            ],
            setsid=True,
            # Python ignores these two; the app must not inherit that (as with subprocess).
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
    finally:
        os.close(write)
        os.close(devnull)
    return pid, read


def _spawn_isolated(
    command: list[str], user: tuple[int, int] | None, cgroups: list[str], attach: str = ""
) -> tuple[int, int]:
    """As _spawn, as the app's user and inside its cgroups: posix_spawn can do neither, so a
    fork, then in the child (before exec, so nothing of the app runs outside them) the
    cgroups, then setgroups/setgid/setuid, which leave no capability to a non-root uid.

    `attach`: the child keeps the shim's standard streams (the read end returned is -1), and
    with "tty" takes them, a terminal, as its controlling terminal."""
    read, write = os.pipe()
    errors_read, errors_write = os.pipe()  # closed by a successful exec: EOF means started
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child of a fork)
        try:
            os.setsid()
            if attach == "tty":
                import fcntl
                import termios

                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            for directory in cgroups:
                fd = os.open(directory + "/cgroup.procs", os.O_WRONLY)
                os.write(fd, b"0")  # 0: the writing process itself
                os.close(fd)
            if not attach:
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                os.dup2(write, 1)
                os.dup2(write, 2)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(sig, signal.SIG_DFL)
            if user is not None:
                os.setgroups([])
                os.setgid(user[1])
                os.setuid(user[0])
            os.execvpe(command[0], command, os.environ)
        except BaseException as exc:  # reported to the parent, then exit
            os.write(errors_write, str(exc).encode() or b"error")
        os._exit(127)
    os.close(write)
    os.close(errors_write)
    failed = os.read(errors_read, 4096)
    os.close(errors_read)
    if failed or attach:
        os.close(read)
    if failed:
        os.waitpid(pid, 0)
        raise OSError(failed.decode(errors="replace"))
    return pid, -1 if attach else read


def _oom_killed(cgroups: list[str]) -> bool:
    """Whether the kernel's OOM killer killed a process of these cgroups (v1 oom_control,
    v2 memory.events both count `oom_kill`)."""
    for directory in cgroups:
        for name in ("memory.oom_control", "memory.events"):
            try:
                with open(f"{directory}/{name}") as f:
                    for line in f:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
            except (OSError, ValueError):
                continue
    return False


def _remove_cgroups(cgroups: list[str]) -> None:
    """Kill what is left in the cgroups (a daemon that left the process group cannot leave
    them), then remove them."""
    import time

    for directory in cgroups:
        for _ in range(50):
            try:
                with open(f"{directory}/cgroup.procs") as f:
                    left = [int(p) for p in f.read().split()]
                for pid in left:
                    os.kill(pid, signal.SIGKILL)
                os.rmdir(directory)
                break
            except ProcessLookupError:
                continue
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)  # EBUSY: the killed ones are still exiting


def main(argv: list[str] | None = None) -> int:
    options = _parse(sys.argv[1:] if argv is None else argv)
    directory, grace, log_cap, command = (
        options.directory,
        options.grace,
        options.log_cap,
        options.command,
    )
    try:
        if options.user is None and not options.cgroups and not options.attach:
            pid, output = _spawn(command)
        else:
            pid, output = _spawn_isolated(command, options.user, options.cgroups, options.attach)
    except OSError as exc:
        sys.exit(f"shim.py: cannot start {command[0]}: {exc}")

    # The app runs: the rest can take its time.
    import contextlib
    import threading
    import time

    state_path = os.path.join(directory, "state.json")
    log = Log(os.path.join(directory, "output.log"), log_cap)
    state: dict[str, object] = {
        "shim_pid": os.getpid(),
        "shim_start": proc_start_time(os.getpid()),
        "pid": pid,
        "pid_start": proc_start_time(pid),
        "status": "running",
        "exit_code": None,
    }
    stopping = threading.Event()
    stopped_at: list[float] = []

    def kill_after_grace() -> None:
        deadline = time.monotonic() + grace
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)

    def on_term(signum: int, _frame: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        stopped_at.append(time.monotonic())
        state["status"] = "stopping"
        write_json(state_path, state)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        threading.Thread(target=kill_after_grace, daemon=True).start()

    # Before state.json: the rack signals the shim only once it has read that file.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    write_json(state_path, state)

    def copy_output() -> None:
        if output < 0:  # attached: the rack reads the output itself
            return
        with os.fdopen(output, "rb") as lines:
            for line in iter(lines.readline, b""):
                log.write(line)

    reader = threading.Thread(target=copy_output, daemon=True)
    reader.start()
    if options.attach:
        # The process has the streams: the shim lets go of them, so that the rack sees their
        # end when the process (and what it started) is done with them.
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if stopping.is_set():
        # The shell may exit on SIGTERM at once while the app it started finishes its
        # requests: give the rest of the group what is left of the grace period.
        deadline = stopped_at[0] + grace
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    # What the command left behind in its process group (the shell's children when the shell
    # itself was killed, daemons) dies with it, or it would run on unsupervised.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    # A daemon the command left behind may hold the pipe open: don't wait on it for long.
    reader.join(timeout=2)
    # A process killed by a signal reports -N; shells say 128+N, which is what users know.
    state["exit_code"] = code if code >= 0 else 128 - code
    if options.cgroups:
        state["oom_killed"] = _oom_killed(options.cgroups)
        _remove_cgroups(options.cgroups)
    state["status"] = "exited"
    write_json(state_path, state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
