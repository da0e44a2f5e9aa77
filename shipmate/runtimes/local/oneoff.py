"""The output of a one-off process (`shipmate run`), followed as the process writes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from shipmate.runtimes.local.process import LocalProcess

# How often the output file is read while the process runs (at once when it exits).
FOLLOW_POLL = 0.1


async def follow(process: LocalProcess) -> AsyncIterator[tuple[str, str | int]]:
    """("line", text) for each line of output, without its timestamp, then ("exit", code)."""
    offset = 0
    while True:
        finished = not process.alive
        lines, offset = _read_new(process.log_path, offset)
        for line in lines:
            yield "line", line.split(" ", 1)[1] if " " in line else ""
        if finished:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.exited.wait(), timeout=FOLLOW_POLL)
    yield "exit", process.exit_code if process.exit_code is not None else 1


def _read_new(path: Path, offset: int) -> tuple[list[str], int]:
    """Whole lines written past `offset`, and the offset after them."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    text = data[:end].decode("utf-8", "replace")
    return text.splitlines(), offset + end
