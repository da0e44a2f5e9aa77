"""`shipmate rack ...`: start, stop and describe the local rack."""

from __future__ import annotations

import os
from dataclasses import replace

import click

from shipmate import lifecycle
from shipmate.cli.client import CliError
from shipmate.cli.common import client
from shipmate.cli.output import keyvalues
from shipmate.config import DEFAULT_API, DEFAULT_ROUTER, Settings, check_api_binding


@click.group("rack", invoke_without_command=True)
@click.pass_context
def rack(ctx: click.Context) -> None:
    """Show the rack; `rack start` and `rack stop` run and stop it."""
    if ctx.invoked_subcommand is not None:
        return
    info = client().get("/rack")
    keyvalues(
        [
            ("Name", info["name"]),
            ("Provider", info["provider"]),
            ("Router", info["router"]),
            ("Status", info["status"]),
            ("Version", info["version"]),
            ("Isolation", info.get("isolation") or "a user per app, memory and CPU limits"),
        ]
    )


@rack.command("start")
@click.option("--detach", is_flag=True, help="Run in the background; return once it answers.")
@click.option("--api", "api", default=DEFAULT_API, show_default=True, metavar="HOST:PORT")
@click.option("--router", "router", default=DEFAULT_ROUTER, show_default=True, metavar="HOST:PORT")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate: serve HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert.")
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow plain HTTP on a non-loopback --api (a TLS proxy in front encrypts it).",
)
def start(
    detach: bool,
    api: str,
    router: str,
    tls_cert: str | None,
    tls_key: str | None,
    insecure: bool,
) -> None:
    """Run the rack: API, runtime and router."""
    check_api_binding(api, tls_cert, tls_key, insecure)
    settings = Settings.from_env()
    if tls_cert and tls_key:
        settings = replace(
            settings, tls_cert=os.path.abspath(tls_cert), tls_key=os.path.abspath(tls_key)
        )
    pid = lifecycle.running_pid(settings)
    if pid is not None:
        raise CliError(f"a rack is already running under {settings.home} (pid {pid})")
    if not detach:
        lifecycle.run(settings, api, router)
        return
    started = lifecycle.start_detached(settings, api, router, insecure)
    click.echo(
        f"Rack running: API {started.api}, router {started.router} "
        f"(pid {started.pid}, log {started.log_file})"
    )


@rack.command("stop")
@click.option("--all", "everything", is_flag=True, help="Stop the app processes and router too.")
def stop(everything: bool) -> None:
    """Stop the rack (the API); apps and the router keep serving unless --all."""
    settings = Settings.from_env()
    pid = lifecycle.running_pid(settings)
    if pid is None and not everything:
        raise CliError(f"no rack is running under {settings.home}")
    if pid is not None:
        click.echo(f"Stopping rack (pid {pid})...", nl=False)
        lifecycle.stop_rack(pid)
        click.echo(" OK")
    if not everything:
        return
    # Apps before the router, so no request reaches a router that has nowhere to send it.
    click.echo("Stopping app processes...", nl=False)
    count = lifecycle.stop_apps(settings)
    click.echo(f" OK ({count})")
    router = lifecycle.router_pid(settings)
    if router is not None:
        click.echo(f"Stopping router (pid {router})...", nl=False)
        lifecycle.stop_router(settings)
        click.echo(" OK")


@rack.command("migrate")
@click.option(
    "--to",
    "target",
    default=None,
    metavar="REVISION",
    help="Schema revision to move to (default: the latest); an older one downgrades.",
)
def migrate(target: str | None) -> None:
    """Upgrade the state store's schema (rack start does it too), or downgrade it."""
    settings = Settings.from_env()
    with lifecycle.state_store(settings) as store:
        change = store.plan(target)
        if change.downgrade and lifecycle.running_pid(settings) is not None:
            raise CliError(
                f"a rack is running under {settings.home} with schema {change.before}: "
                "stop it (`shipmate rack stop`) before downgrading"
            )
        if change.before == change.after:
            click.echo(
                f"The state store {change.where} is at schema {change.before}: nothing to do"
            )
            return
        verb = "Downgrading" if change.downgrade else "Migrating"
        click.echo(
            f"{verb} the state store {change.where} from {change.before or 'empty'} "
            f"to {change.after}...",
            nl=False,
        )
        store.apply(change)
        click.echo(" OK")


def register(cli: click.Group) -> None:
    cli.add_command(rack)
