"""`shipmate restart`: replace processes with a rolling update."""

from __future__ import annotations

import click

from shipmate.cli.common import app_name, app_option, client, follow_promotion, wait_option


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


def register(cli: click.Group) -> None:
    cli.add_command(restart)
