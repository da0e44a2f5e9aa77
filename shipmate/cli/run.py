"""`shipmate run`: a one-off process with this terminal (or these pipes), and its exit code."""

from __future__ import annotations

import shlex
import sys

import click

from shipmate.cli.attach import run_attached
from shipmate.cli.common import app_name, app_option, client


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@app_option
@click.option("--release", default=None, help="Run with this release (default: the active one).")
def run(service: str, command: tuple[str, ...], app: str | None, release: str | None) -> None:
    """Run COMMAND as a one-off process of SERVICE; exit with its exit code.

    Standard input goes to it; from a terminal, it runs in a terminal of its own (Ctrl-C,
    window size and all), so `shipmate run web python3` is an interactive shell."""
    # One argument is a shell command as typed; several are quoted so that each stays one word.
    line = command[0] if len(command) == 1 else shlex.join(command)
    params = {"service": service, "command": line, "release": release}
    sys.exit(run_attached(client(), f"/apps/{app_name(app)}/run", params))


def register(cli: click.Group) -> None:
    cli.add_command(run)
