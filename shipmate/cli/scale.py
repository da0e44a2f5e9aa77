"""`shipmate scale`: show process counts, or change one with a rolling update."""

from __future__ import annotations

import click

from shipmate.cli.client import CliError
from shipmate.cli.common import (
    app_name,
    app_option,
    client,
    follow_started,
    json_option,
    no_wait_option,
    wait_option,
)
from shipmate.cli.output import print_json, table


@click.command("scale")
@click.argument("service", required=False)
@click.option("--count", type=click.IntRange(0, 100), default=None, help="Processes to run.")
@app_option
@json_option
@wait_option
@no_wait_option
def scale(
    service: str | None,
    count: int | None,
    app: str | None,
    as_json: bool,
    wait: float | None,
    no_wait: bool,
) -> None:
    """Show the process counts, or change one service's count with a rolling update."""
    name = app_name(app)
    api = client()
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
    if follow_started(api, name, started, no_wait, f"Scaling {service} to {count}..."):
        click.echo("OK")


def register(cli: click.Group) -> None:
    cli.add_command(scale)
