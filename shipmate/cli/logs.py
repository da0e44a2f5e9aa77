"""`shipmate logs`, `ps`, `scale`, `restart` and `run`."""

from __future__ import annotations

import re
import shlex
import sys

import click

from shipmate.cli.client import CliError
from shipmate.cli.common import (
    app_name,
    app_option,
    client,
    follow_promotion,
    json_option,
    wait_option,
)
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
@click.option("--service", default=None, help="Only this service's output and events.")
@click.option("--filter", "text", default=None, help="Only lines containing TEXT.")
def logs(
    app: str | None, since: str, no_follow: bool, service: str | None, text: str | None
) -> None:
    """Stream process output and platform events."""
    params: dict[str, object] = {"since": parse_duration(since), "follow": not no_follow}
    if service:
        params["service"] = service
    if text:
        params["filter"] = text
    for kind, data in client().stream(f"/apps/{app_name(app)}/logs", **params):
        if kind == "log":
            click.echo(data["line"])


@click.group("ps", invoke_without_command=True)
@app_option
@json_option
@click.pass_context
def ps(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """List the app's processes; `ps stop ID` stops one (it is replaced)."""
    if ctx.invoked_subcommand is not None:
        return
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


@ps.command("stop")
@click.argument("process_id")
@app_option
def ps_stop(process_id: str, app: str | None) -> None:
    """Stop a process; the rack starts a replacement."""
    click.echo(f"Stopping {process_id}...", nl=False)
    client().delete(f"/apps/{app_name(app)}/processes/{process_id}")
    click.echo(" OK")


@click.command("scale")
@click.argument("service", required=False)
@click.option("--count", type=click.IntRange(0, 100), default=None, help="Processes to run.")
@app_option
@json_option
@wait_option
def scale(
    service: str | None, count: int | None, app: str | None, as_json: bool, wait: float | None
) -> None:
    """Show the process counts, or change one service's count with a rolling update."""
    api = client()
    name = app_name(app)
    if count is None:
        found = api.get(f"/apps/{name}/scale")
        if service:
            found = [s for s in found if s["service"] == service]
        if as_json:
            print_json(found)
            return
        table(
            ["service", "desired", "running"],
            [[s["service"], str(s["desired"]), str(s["running"])] for s in found],
        )
        return
    if service is None:
        raise CliError("name the service to scale: shipmate scale SERVICE --count N")
    started = api.post(
        f"/apps/{name}/scale", json={"service": service, "count": count, "wait": wait}
    )
    click.echo(f"Scaling {service} to {count}...")
    follow_promotion(api, name, started["promotion"]["id"])
    click.echo("OK")


@click.command("restart")
@click.argument("service", required=False)
@app_option
@wait_option
def restart(service: str | None, app: str | None, wait: float | None) -> None:
    """Replace every process (of SERVICE, or all) with a rolling update."""
    api = client()
    name = app_name(app)
    started = api.post(f"/apps/{name}/restart", json={"service": service, "wait": wait})
    click.echo(f"Restarting {service or 'all services'}...")
    follow_promotion(api, name, started["promotion"]["id"])
    click.echo("OK")


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@app_option
@click.option("--release", default=None, help="Run with this release (default: the active one).")
def run(service: str, command: tuple[str, ...], app: str | None, release: str | None) -> None:
    """Run COMMAND as a one-off process of SERVICE; exit with its exit code."""
    # One argument is a shell command as typed; several are quoted so that each stays one word.
    line = command[0] if len(command) == 1 else shlex.join(command)
    body = {"service": service, "command": line, "release": release}
    code = 1
    for kind, data in client().stream(f"/apps/{app_name(app)}/run", method="POST", body=body):
        if kind == "line":
            click.echo(data)
        elif kind == "exit":
            code = int(data)
    sys.exit(code)


def register(cli: click.Group) -> None:
    for command in (logs, ps, scale, restart, run):
        cli.add_command(command)
