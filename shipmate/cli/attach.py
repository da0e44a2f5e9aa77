"""`shipmate run`'s session with its one-off: input in, output out, over the rack's WebSocket.

From a terminal, the one-off gets a pseudo-terminal of the same size and this terminal goes
raw, as with `ssh -t`: every key, Ctrl-C and Ctrl-D included, goes to the process and the
remote terminal echoes it. Otherwise standard input goes through as it is, its end is sent as
end of input, and Ctrl-C here is sent to the process as SIGINT (shipmate/api/attach.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import sys
import termios
import threading
import tty
from collections.abc import Iterator, Mapping
from types import FrameType
from urllib.parse import urlencode

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from shipmate.cli.client import Client, CliError, rack_error, tls_context

READ_SIZE = 65536


def run_attached(api: Client, path: str, params: Mapping[str, str | None]) -> int:
    """Run the one-off at `path` with this process's standard streams; its exit code."""
    stdin = sys.stdin.fileno()
    terminal = os.isatty(stdin)
    query = {k: v for k, v in params.items() if v is not None}
    if terminal:
        size = os.get_terminal_size(stdin)
        query |= {"tty": "1", "rows": str(size.lines), "cols": str(size.columns)}
    with _connect(api, f"{path}?{urlencode(query)}") as conn, _raw(stdin if terminal else None):
        if terminal:
            _on_resize(conn, stdin)
        else:
            _on_interrupt(conn)
        threading.Thread(target=_send_input, args=(conn, stdin, terminal), daemon=True).start()
        return _receive_output(conn, api.base_url)


def _connect(api: Client, path: str) -> ClientConnection:
    url = "ws" + api.base_url.removeprefix("http") + path
    context: ssl.SSLContext | None = None
    if url.startswith("wss:"):
        trust = tls_context(api.base_url)
        context = trust if isinstance(trust, ssl.SSLContext) else ssl.create_default_context()
    try:
        return connect(
            url,
            additional_headers={"Authorization": f"Bearer {api.token}"},
            ssl=context,
            open_timeout=60,
            max_size=None,
            compression=None,  # output is mostly small writes: deflate costs more than it saves
        )
    except InvalidStatus as exc:
        answer = httpx.Response(exc.response.status_code, content=bytes(exc.response.body or b""))
        answer.read()
        raise rack_error(answer) from None
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise CliError(
            f"cannot reach the rack at {api.base_url} ({type(exc).__name__}): "
            "is it running? try `shipmate rack start --detach`"
        ) from None


@contextlib.contextmanager
def _raw(fd: int | None) -> Iterator[None]:
    """This terminal in raw mode for the session, as it was after."""
    if fd is None:
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _on_resize(conn: ClientConnection, fd: int) -> None:
    def resized(_signum: int, _frame: FrameType | None) -> None:
        size = os.get_terminal_size(fd)
        with contextlib.suppress(ConnectionClosed):
            conn.send(json.dumps({"resize": [size.lines, size.columns]}))

    signal.signal(signal.SIGWINCH, resized)


def _on_interrupt(conn: ClientConnection) -> None:
    """Ctrl-C here (no terminal: a raw one makes it a key) is SIGINT there; the process
    decides what it means, and its exit code is this command's."""

    def send() -> None:
        with contextlib.suppress(ConnectionClosed):
            conn.send(json.dumps({"signal": "INT"}))

    def interrupted(_signum: int, _frame: FrameType | None) -> None:
        # Not from the handler itself: it may run while this thread is inside the connection.
        threading.Thread(target=send, daemon=True).start()

    signal.signal(signal.SIGINT, interrupted)


def _send_input(conn: ClientConnection, fd: int, terminal: bool) -> None:
    with contextlib.suppress(ConnectionClosed, OSError):
        while data := os.read(fd, READ_SIZE):
            conn.send(data)
        if not terminal:
            conn.send(json.dumps({"eof": True}))


def _receive_output(conn: ClientConnection, base_url: str) -> int:
    out = sys.stdout.buffer
    while True:
        try:
            message = conn.recv()
        except ConnectionClosed:
            break
        if isinstance(message, bytes):
            out.write(message)
            out.flush()
            continue
        with contextlib.suppress(ValueError, TypeError, KeyError):
            return int(json.loads(message)["exit"])
    raise CliError(
        f"lost the rack at {base_url} before the one-off ended; "
        "the rack stops a one-off nobody is attached to"
    )
