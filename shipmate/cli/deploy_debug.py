"""`shipmate deploy-debug`: why the processes of the app's latest promotion are not healthy."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from shipmate.cli.common import app_name, app_option, client
from shipmate.cli.output import keyvalues, print_json, relative, table
from shipmate.domain.humanize import rfc3339, utcnow

CLEAR = "\033[H\033[2J"


def _outcome(promotion: dict[str, Any]) -> str:
    if promotion["finished"] is None:
        return "in progress"
    if promotion["succeeded"]:
        return "succeeded"
    return "failed" if promotion["state"] == "Failure" else "reverted"


def detail(process: dict[str, Any]) -> str:
    """How it ended or fails, in a few words: what `--output summary` shows of it."""
    state = process["state"]
    if state == "oom-killed":
        limit = process["memory_limit"]
        return f"out of memory (limit {limit} MB)" if limit else "out of memory"
    if state == "crash-looping":
        codes = ", ".join(str(c) for c in process["exit_codes"])
        return f"exit codes {codes}"
    if state == "exited":
        return f"exit code {process['exit_code']}"
    if state == "unhealthy" or (state == "starting" and process["health_problem"]):
        return f"last check: {process['health_problem']}" if process["health_problem"] else ""
    if process["exit_codes"]:
        return f"restarted after exit code {process['exit_codes'][-1]}"
    return ""


def _summary(found: dict[str, Any]) -> None:
    _missing(found)
    if not found["processes"]:
        _nothing(found)
        return
    table(
        ["id", "service", "state", "detail", "hint"],
        [
            [p["id"], p["service"], p["state"], detail(p), p["hint"] or ""]
            for p in found["processes"]
        ],
    )


def _missing(found: dict[str, Any]) -> None:
    if found["missing_env"]:
        keys = ", ".join(found["missing_env"])
        first = found["missing_env"][0]
        click.echo(
            f"The latest release {found['latest_release']} lacks required env: {keys} "
            f"(a promotion of it is refused): `shipmate env set {first}=... --promote "
            f"-a {found['app']}`"
        )


def _nothing(found: dict[str, Any]) -> None:
    if found["promotion"] is None:
        click.echo(
            f"App {found['app']} has no promotion yet: nothing to diagnose "
            f"(deploy it with `shipmate deploy -a {found['app']}`)"
        )
    elif found["hidden"]:
        click.echo(
            f"All {found['hidden']} processes of {found['release']} are healthy (--all shows them)"
        )
    else:
        click.echo(f"No process of {found['release']} is running or recently exited")


def _terminal(found: dict[str, Any]) -> None:
    promotion = found["promotion"]
    if promotion is None:
        _missing(found)
        _nothing(found)
        return
    pairs = [
        ("App", found["app"]),
        ("Release", found["release"]),
        (
            "Promotion",
            f"{promotion['id']} ({promotion['kind']}, {relative(promotion['created'])}"
            f"{', by ' + promotion['created_by'] if promotion['created_by'] else ''}): "
            f"{_outcome(promotion)}",
        ),
    ]
    if promotion["reason"]:
        pairs.append(("Reason", promotion["reason"]))
    keyvalues(pairs)
    click.echo("")
    if found["missing_env"]:
        _missing(found)
        click.echo("")
    if not found["processes"]:
        _nothing(found)
    for process in found["processes"]:
        _process(process)
    if found["hidden"] and found["processes"]:
        click.echo(f"({found['hidden']} more healthy or stopped: --all shows them)")
        click.echo("")
    if found["events"]:
        click.echo("Events:")
        for event in found["events"]:
            click.echo(f"  {event['line']}")


def _process(p: dict[str, Any]) -> None:
    said = detail(p)
    click.echo(f"{p['id']}  {p['state']}{'  (' + said + ')' if said else ''}")
    pairs = [("Service", p["service"]), ("Status", p["status"]), ("Command", p["command"])]
    if p["port"] is not None:
        pairs.append(("Port", f"{p['port']} ($PORT)"))
    pairs.append(("Started", relative(p["started"])))
    if p["healthy_at"]:
        pairs.append(("Healthy", relative(p["healthy_at"])))
    if p["health_problem"] and p["state"] in ("starting", "unhealthy"):
        pairs.append(("Last check", p["health_problem"]))
    if p["exited"]:
        how = "stopped by the platform" if p["stopped"] else "on its own"
        pairs.append(("Exited", f"{relative(p['exited'])}, code {p['exit_code']} ({how})"))
    keyvalues([(f"  {k}", v) for k, v in pairs])
    what = "Output before it was ever healthy"
    if p["output"]:
        click.echo(f"  {what}:")
        for line in p["output"]:
            click.echo(f"    {line['text']}")
    else:
        click.echo(f"  {what}: none")
    crash = p["previous_crash"]
    if crash is not None:
        how = "out of memory" if crash["oom_killed"] else f"exit code {crash['exit_code']}"
        click.echo(f"  Previous crash: {crash['process']} ({how}):")
        for line in crash["output"]:
            click.echo(f"    {line['text']}")
    if p["hint"]:
        click.echo(f"  Hint: {p['hint']}")
    click.echo("")


def _show(found: dict[str, Any], output: str) -> None:
    if output == "json":
        print_json(found)
    elif output == "summary":
        _summary(found)
    else:
        _terminal(found)


@click.command("deploy-debug")
@app_option
@click.option(
    "--output",
    type=click.Choice(["terminal", "summary", "json"]),
    default="terminal",
    show_default=True,
    help="terminal: a section per process; summary: one line per process; json: every fact.",
)
@click.option("--service", default=None, help="Only this service's processes.")
@click.option(
    "--lines",
    type=click.IntRange(min=0, max=1000),
    default=20,
    show_default=True,
    metavar="N",
    help="Output lines shown per process.",
)
@click.option("--all", "everything", is_flag=True, help="Healthy processes too.")
@click.option("--no-events", is_flag=True, help="Leave out the promotion's events.")
@click.option(
    "--watch",
    type=click.FloatRange(min=0.5),
    default=None,
    metavar="SECONDS",
    help="Run again every SECONDS until interrupted (Ctrl-C).",
)
def deploy_debug(
    app: str | None,
    output: str,
    service: str | None,
    lines: int,
    everything: bool,
    no_events: bool,
    watch: float | None,
) -> None:
    """Diagnose the app's latest promotion: each process's state, what it printed before it
    was ever healthy, its previous crash, the promotion's events, and a hint."""
    name = app_name(app)
    params: dict[str, Any] = {"lines": lines, "all": everything, "events": not no_events}
    if service:
        params["service"] = service
    api = client()
    path = f"/apps/{name}/deploy-debug"
    if watch is None:
        _show(api.get(path, params=params), output)
        return
    screen = sys.stdout.isatty()
    try:
        while True:
            found = api.get(path, params=params)
            if screen:
                click.echo(CLEAR, nl=False)
            click.echo(f"Every {watch:g}s: shipmate deploy-debug -a {name}  {rfc3339(utcnow())}")
            click.echo("")
            _show(found, output)
            if not screen:
                click.echo("")
            time.sleep(watch)
    except KeyboardInterrupt:
        return


def register(cli: click.Group) -> None:
    cli.add_command(deploy_debug)
