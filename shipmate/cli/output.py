"""What the CLI prints: tables, key/value blocks, JSON, relative times."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from shipmate.domain.humanize import ago, utcnow


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Upper-case header, columns left-aligned, two spaces apart; the last column unpadded."""
    cells = [[h.upper() for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        padded = [c.ljust(widths[i]) for i, c in enumerate(row[:-1])] + [row[-1]]
        click.echo("  ".join(padded).rstrip())


def keyvalues(pairs: Sequence[tuple[str, str]]) -> None:
    """Key/value lines, values aligned; multi-line values continue under the first."""
    width = max(len(k) for k, _ in pairs) + 2
    for key, value in pairs:
        lines = str(value).split("\n") or [""]
        click.echo(f"{key.ljust(width)}{lines[0]}".rstrip())
        for line in lines[1:]:
            click.echo(f"{' ' * width}{line}".rstrip())


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def relative(value: str | None) -> str:
    return "" if not value else ago(parse_time(value), utcnow())


def elapsed(start: str | None, end: str | None) -> str:
    if not start:
        return ""
    seconds = int(((parse_time(end) if end else utcnow()) - parse_time(start)).total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m"


_stderr = Console(stderr=True, highlight=False, soft_wrap=True)

# True while a progress line (`Creating myapp...`) waits for its ` OK`.
_line_open = False


def progress(message: str) -> None:
    """The start of a progress line, finished by `done` (or cut short by `error`)."""
    global _line_open
    click.echo(message, nl=False)
    _line_open = True


def done(message: str = " OK") -> None:
    global _line_open
    click.echo(message)
    _line_open = False


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def end_progress() -> None:
    """End an open progress line, so that what follows starts on a line of its own."""
    global _line_open
    if _line_open:
        _line_open = False
        # Only a terminal shows stdout and stderr on one line; a pipe keeps stdout as it was.
        if stdout_is_terminal():
            click.echo()


def error(message: str) -> None:
    """`ERROR: <message>` on stderr, one line; in red on a terminal (rich knows when)."""
    end_progress()
    text = Text("ERROR:", style="bold red")
    text.append(f" {message}")
    _stderr.print(text)


def note(message: str | None) -> None:
    """`Note: <message>` on stderr, one line, when the rack sent one (stdout stays the data)."""
    if message:
        end_progress()
        click.echo(f"Note: {message}", err=True)
