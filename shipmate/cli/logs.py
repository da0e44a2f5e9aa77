"""`shipmate logs` and `shipmate ps`."""

from __future__ import annotations

import re

import click

from shipmate.cli.common import app_name, app_option, client, json_option
from shipmate.cli.output import print_json, relative, table

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r}: use a number and a unit, like 30s, 2m, 1h or 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


@click.command("logs")
@app_option
@click.option("--since", default="2m", show_default=True, help="How far back: 30s, 2m, 1h, 1d.")
@click.option("--no-follow", is_flag=True, help="Print what is there and exit.")
@click.option("--filter", "text", default=None, help="Only lines containing TEXT.")
def logs(app: str | None, since: str, no_follow: bool, text: str | None) -> None:
    """Stream the app's platform events."""
    params = {"since": parse_duration(since), "follow": not no_follow}
    for kind, data in client().stream(f"/apps/{app_name(app)}/logs", **params):
        if kind == "event" and (text is None or text in data["line"]):
            click.echo(data["line"])


@click.command("ps")
@app_option
@json_option
def ps(app: str | None, as_json: bool) -> None:
    """List the app's processes."""
    found = client().get(f"/apps/{app_name(app)}/processes")
    if as_json:
        print_json(found)
        return
    table(
        ["id", "service", "status", "release", "started", "command"],
        [
            [p["id"], p["service"], p["status"], p["release"], relative(p["started"]), p["command"]]
            for p in found
        ],
    )


def register(cli: click.Group) -> None:
    cli.add_command(logs)
    cli.add_command(ps)
