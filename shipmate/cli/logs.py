"""`shipmate logs`: process output and platform events."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from shipmate.cli.common import app_name, app_option, client, json_option

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
@click.option(
    "-f",
    "--follow/--no-follow",
    default=True,
    show_default=True,
    help="Go on printing lines as they come; --no-follow prints what is there and exits.",
)
@click.option(
    "--tail",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Start with the last N lines of --since only.",
)
@click.option("--service", default=None, help="Only this service's output and events.")
@click.option("--filter", "text", default=None, help="Only lines containing TEXT.")
@json_option
def logs(
    app: str | None,
    since: str,
    follow: bool,
    tail: int | None,
    service: str | None,
    text: str | None,
    as_json: bool,
) -> None:
    """Stream process output and platform events (--json: one JSON object a line)."""
    params: dict[str, Any] = {"since": parse_duration(since), "follow": follow}
    if tail is not None:
        params["tail"] = tail
    if service:
        params["service"] = service
    if text:
        params["filter"] = text
    for kind, data in client().stream(f"/apps/{app_name(app)}/logs", params=params):
        if kind == "log":
            click.echo(json.dumps(data, sort_keys=True) if as_json else data["line"])


def register(cli: click.Group) -> None:
    cli.add_command(logs)
