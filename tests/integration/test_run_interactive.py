"""Issue 10, point 4: `shipmate run` takes standard input, and a terminal when it has one.

The CLI runs in a pseudo-terminal of the test's (pty.fork), as under a user's terminal: the
one-off then gets a terminal of its own of the same size, keys (Ctrl-C, Ctrl-D) go to it, and
a window change follows. Without a terminal, stdin is piped through and Ctrl-C is SIGINT.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipmate.common.waiting import poll_until
from tests.integration.conftest import Rack, _cli, own_rack

pytestmark = pytest.mark.integration

APP = "console"


@pytest.fixture(scope="module")
def rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rack]:
    """One rack, on SQLite: the store has no part in relaying a session."""
    with own_rack(tmp_path_factory, "rack") as rack:
        rack.deploy(APP)
        yield rack


class Terminal:
    """The CLI under a pseudo-terminal, driven as a user at a keyboard would."""

    def __init__(self, rack: Rack, *args: str, rows: int = 30, cols: int = 100) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover (the child)
            os.chdir(rack.home)
            os.execvpe(_cli()[0], [*_cli(), *args, "-a", APP], rack.env)
        self.resize(rows, cols)
        self.output = b""

    def resize(self, rows: int, cols: int) -> None:
        # The kernel sends SIGWINCH to the CLI, the terminal's foreground process.
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def expect(self, pattern: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} in {self.output!r}"
            if select.select([self.fd], [], [], min(left, 0.2))[0]:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:  # EIO: the CLI has exited
                    data = b""
                assert data, f"the CLI ended before {pattern!r}: {self.output!r}"
                self.output += data

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def exit_code(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    self.output += os.read(self.fd, 4096)
                except OSError:
                    time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"the CLI did not exit: {self.output!r}")


def test_piped_input_reaches_the_process_and_the_exit_code_is_kept(rack: Rack) -> None:
    result = rack.run("run", "web", "python3", "-a", APP, input="print(6*7)\n")
    assert (result.code, result.out, result.err) == (0, "42\n", "")
    result = rack.run(
        "run", "web", 'read code; echo "exiting $code"; exit $code', "-a", APP, input="5\n"
    )
    assert (result.code, result.out) == (5, "exiting 5\n")
    # No input at all (stdin is /dev/null): what reads it sees its end at once.
    result = rack.run("run", "web", "cat; echo done", "-a", APP)
    assert (result.code, result.out) == (0, "done\n")


def test_a_terminal_gives_an_interactive_shell(rack: Rack) -> None:
    term = Terminal(rack, "run", "web", "python3")
    term.expect(rb">>> ")
    term.type(b"print(6*7)\r")
    term.expect(rb"\r\n42\r\n>>> ")
    term.type(b"\x04")  # Ctrl-D: end of input, on the one-off's terminal
    assert term.exit_code() == 0


def test_the_terminal_has_the_users_size_and_follows_it(rack: Rack) -> None:
    script = 'trap "stty size" WINCH; stty size; tty; while true; do sleep 0.1; done'
    term = Terminal(rack, "run", "web", script, rows=33, cols=111)
    term.expect(rb"33 111\r\n/dev/pts/\d+\r\n")
    term.resize(40, 132)
    term.expect(rb"40 132\r\n")
    term.type(b"\x03")  # Ctrl-C: SIGINT from the one-off's own terminal
    assert term.exit_code() == 130


def test_ctrl_c_without_a_terminal_is_sigint_to_the_process(rack: Rack) -> None:
    script = 'trap "echo interrupted; exit 9" INT; echo ready; while true; do sleep 0.1; done'
    cli = subprocess.Popen(
        [*_cli(), "run", "web", script, "-a", APP],
        env=rack.env,
        cwd=rack.home,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline() == "ready\n"
        cli.send_signal(signal.SIGINT)
        out, _ = cli.communicate(timeout=30)
        assert (cli.returncode, out) == (9, "interrupted\n")
    finally:
        if cli.poll() is None:
            cli.kill()


def test_a_one_off_whose_cli_is_gone_is_stopped(rack: Rack) -> None:
    cli = subprocess.Popen(
        [*_cli(), "run", "web", "echo $$; exec sleep 300", "-a", APP],
        env=rack.env,
        cwd=rack.home,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert cli.stdout is not None
    pid = int(cli.stdout.readline())
    assert Path(f"/proc/{pid}").exists()
    cli.kill()  # no goodbye: the rack sees the connection drop
    cli.wait()
    poll_until(lambda: not Path(f"/proc/{pid}").exists(), 30, what="the one-off to be stopped")


def test_a_refused_run_is_one_line(rack: Rack) -> None:
    result = rack.run("run", "worker", "true", "-a", APP)
    assert result.code == 1
    assert re.fullmatch(r"ERROR: no service worker in release R[A-Z]{9}: [^\n]*\n", result.err)
    stranger = Rack(rack.home, {**rack.env, "SHIPMATE_TOKEN": "not-a-token"})
    refused = stranger.run("run", "web", "true", "-a", APP)
    assert (refused.code, refused.err) == (1, "ERROR: invalid token: check SHIPMATE_TOKEN\n")
