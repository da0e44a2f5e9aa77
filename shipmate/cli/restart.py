"""`shipmate restart`: replace processes with a rolling update."""

from __future__ import annotations

import click

from shipmate.cli.common import (
    app_name,
    app_option,
    client,
    follow_started,
    no_wait_option,
    wait_option,
)


@click.command("restart")
@click.argument("service", required=False)
@app_option
@wait_option
@no_wait_option
def restart(service: str | None, app: str | None, wait: float | None, no_wait: bool) -> None:
    """Replace every process (of SERVICE, or all) with a rolling update."""
    name = app_name(app)
    api = client()
    started = api.post(f"/apps/{name}/restart", json={"service": service, "wait": wait})
    if follow_started(api, name, started, no_wait, f"Restarting {service or 'all services'}..."):
        click.echo("OK")


def register(cli: click.Group) -> None:
    cli.add_command(restart)
