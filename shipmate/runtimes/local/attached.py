"""An interactive one-off process of the local runtime: pipes or a pseudo-terminal, relayed.

The rack opens the process's standard streams itself and hands them to the shim (`--attach`),
so that the app user, the cgroups and the exit code are the shim's as for any process; the
rack keeps the other ends (a pipe pair, or the terminal's master) and relays them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass

from shipmate.runtimes.base import Terminal
from shipmate.runtimes.local.process import LocalProcess, Streams

READ_SIZE = 65536


@dataclass
class Ends:
    """The rack's ends of an attached process's streams, and the process's, until it starts."""

    streams: Streams  # the process's ends, closed here once the shim has them
    stdin: int  # where the rack writes the user's input
    output: int  # where the rack reads what the process prints

    @classmethod
    def open(cls, terminal: Terminal | None) -> Ends:
        if terminal is None:
            child_in, stdin = os.pipe()
            output, child_out = os.pipe()
            ends = cls(Streams("pipe", child_in, child_out), stdin, output)
        else:
            master, slave = os.openpty()
            _set_size(slave, terminal)
            ends = cls(Streams("tty", slave, slave), master, master)
        for fd in {ends.stdin, ends.output}:
            os.set_blocking(fd, False)
        return ends

    def release_child_ends(self) -> None:
        for fd in {self.streams.stdin, self.streams.output}:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        self.release_child_ends()
        for fd in {self.stdin, self.output}:
            with contextlib.suppress(OSError):
                os.close(fd)


class LocalAttached:
    """runtimes.base.Attached over a LocalProcess started with `Ends`."""

    def __init__(
        self, process: LocalProcess, ends: Ends, grace: float, forget: Callable[[], None]
    ) -> None:
        self.process = process
        self.ends = ends
        self.grace = grace
        self.forget = forget
        self.tty = ends.streams.mode == "tty"
        self.stdin_open = True

    async def read(self) -> bytes:
        while True:
            try:
                return os.read(self.ends.output, READ_SIZE)
            except BlockingIOError:
                await _ready(self.ends.output, writing=False)
            except OSError as exc:
                # A terminal whose every slave end is closed answers EIO: the end of output.
                if exc.errno == errno.EIO:
                    return b""
                raise

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self.stdin_open:
            try:
                view = view[os.write(self.ends.stdin, view) :]
            except BlockingIOError:
                await _ready(self.ends.stdin, writing=True)
            except (BrokenPipeError, OSError):
                return  # the process no longer reads its input: what is left has no reader

    def close_stdin(self) -> None:
        if self.tty or not self.stdin_open:
            return
        self.stdin_open = False
        with contextlib.suppress(OSError):
            os.close(self.ends.stdin)

    def resize(self, terminal: Terminal) -> None:
        if self.tty:
            # The kernel tells the terminal's foreground process group (SIGWINCH).
            with contextlib.suppress(OSError):
                _set_size(self.ends.output, terminal)

    def signal(self, signum: int) -> None:
        if signum == signal.SIGTERM:
            self.process.signal(signum)  # through the shim, with its grace and SIGKILL after
        elif self.process.pid is not None and self.process.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)

    async def wait(self) -> int:
        await self.process.exited.wait()
        return self.process.exit_code if self.process.exit_code is not None else 1

    async def close(self) -> None:
        try:
            if self.process.alive:
                await self.process.stop(self.grace)
        finally:
            self.forget()
            self.stdin_open = False
            self.ends.close()


def _set_size(fd: int, terminal: Terminal) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", terminal.rows, terminal.cols, 0, 0))


async def _ready(fd: int, *, writing: bool) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def done() -> None:
        if not ready.done():
            ready.set_result(None)

    if writing:
        loop.add_writer(fd, done)
    else:
        loop.add_reader(fd, done)
    try:
        await ready
    finally:
        if writing:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
