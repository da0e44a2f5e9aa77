"""`shipmate rack ...`: start, stop and describe the local rack."""

from __future__ import annotations

import os
from dataclasses import replace

import click

import shipmate
from shipmate import lifecycle
from shipmate.cli.client import CliError
from shipmate.cli.common import client, json_option
from shipmate.cli.output import done, keyvalues, print_json, progress
from shipmate.config import (
    DEFAULT_API,
    DEFAULT_ROUTER,
    DEFAULT_ROUTER_HTTPS,
    Settings,
    check_api_binding,
)


@click.group("rack", invoke_without_command=True)
@json_option
@click.pass_context
def rack(ctx: click.Context, as_json: bool) -> None:
    """Show the rack; `rack start` and `rack stop` run and stop it."""
    if ctx.invoked_subcommand is not None:
        return
    settings = Settings.from_env()
    if not os.environ.get("SHIPMATE_RACK") and lifecycle.running_pid(settings) is None:
        _stopped(settings, as_json)
        return
    info = client().get("/rack")
    if as_json:
        print_json(info)
        return
    keyvalues(
        [
            ("Name", info["name"]),
            ("Provider", info["provider"]),
            ("Router", info["router"]),
            ("Status", info["status"]),
            ("Version", info["version"]),
        ]
    )
    if info.get("isolation"):
        # The table is SPEC's five keys; a rack that cannot keep apps apart says so beside it.
        click.echo(f"WARNING: {info['isolation']}", err=True)


def _stopped(settings: Settings, as_json: bool) -> None:
    """A local rack whose API is down: what still serves without it."""
    remains = lifecycle.remains(settings)
    if as_json:
        print_json(
            {
                "name": settings.home.name or "shipmate",
                "status": "stopped",
                "router": remains.router_url,
                "router_pid": remains.router_pid,
                "processes": remains.processes,
            }
        )
        return
    router = (
        f"{remains.router_url} (pid {remains.router_pid}, still serving)"
        if remains.router_pid is not None
        else "not running"
    )
    processes = (
        ", ".join(f"{app}: {n}" for app, n in remains.processes.items())
        if remains.processes
        else "none"
    )
    # SPEC's five keys, as for a running rack; what still runs without the API beside them.
    keyvalues(
        [
            ("Name", settings.home.name or "shipmate"),
            ("Provider", "local"),
            ("Router", router),
            ("Status", "stopped"),
            ("Version", shipmate.__version__),
        ]
    )
    click.echo(
        f"The rack's API is stopped; app processes still running: {processes}. "
        "Start it with `shipmate rack start --detach`.",
        err=True,
    )


@rack.command("start")
@click.option("--detach", is_flag=True, help="Run in the background; return once it answers.")
@click.option("--api", "api", default=DEFAULT_API, show_default=True, metavar="HOST:PORT")
@click.option("--router", "router", default=DEFAULT_ROUTER, show_default=True, metavar="HOST:PORT")
@click.option(
    "--router-https",
    default=None,
    metavar="HOST:PORT",
    help=f"The router's HTTPS listener [default: {DEFAULT_ROUTER_HTTPS}; port 0 with --router :0]",
)
@click.option(
    "--acme-directory",
    default=None,
    metavar="URL",
    help="ACME server: certificates for every domain.",
)
@click.option("--acme-email", default=None, help="Contact address of the ACME account.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate: serve HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert.")
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow plain HTTP on a non-loopback --api (a TLS proxy in front encrypts it).",
)
@click.option(
    "--runtime",
    type=click.Choice(["local", "swarm", "kubernetes"]),
    default="local",
    show_default=True,
    help="What runs the apps: processes on this machine, Docker Swarm services, or a "
    "Kubernetes cluster.",
)
@click.option(
    "--registry",
    default=None,
    metavar="HOST:PORT",
    help="The registry images are pushed to and run from (container runtimes).",
)
@click.option(
    "--docker-host",
    default=None,
    metavar="URL",
    help="The Docker engine of --runtime swarm (default: $DOCKER_HOST).",
)
@click.option(
    "--kubeconfig",
    envvar="KUBECONFIG",
    type=click.Path(dir_okay=False),
    help="kubeconfig of the cluster (default $KUBECONFIG; none: in-cluster credentials).",
)
@click.option(
    "--namespace-prefix", metavar="PREFIX", help="App A lives in PREFIX-A (default: rack name)."
)
def start(
    detach: bool,
    api: str,
    router: str,
    router_https: str | None,
    acme_directory: str | None,
    acme_email: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    insecure: bool,
    runtime: str,
    registry: str | None,
    docker_host: str | None,
    kubeconfig: str | None,
    namespace_prefix: str | None,
) -> None:
    """Run the rack: API, runtime and router."""
    check_api_binding(api, tls_cert, tls_key, insecure)
    if runtime == "swarm" and not registry:
        raise CliError("--runtime swarm needs --registry HOST:PORT (where images are pushed)")
    if router_https is None:
        # A router on any free port (tests, several racks) gets an HTTPS port likewise.
        router_https = "127.0.0.1:0" if router.endswith(":0") else DEFAULT_ROUTER_HTTPS
    settings = replace(
        Settings.from_env(),
        router_https=router_https,
        acme_directory=acme_directory,
        acme_email=acme_email,
        runtime=runtime,
        registry=registry,
        docker_host=docker_host,
        kubeconfig=os.path.abspath(kubeconfig) if kubeconfig and runtime == "kubernetes" else None,
        namespace_prefix=namespace_prefix,
    )
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
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=lifecycle.STOP_WAIT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the promotions and builds running before interrupting them.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Interrupt the promotions and builds running (the next start reverts a promotion).",
)
def stop(everything: bool, timeout: float, force: bool) -> None:
    """Stop the rack (the API) once its promotions and builds finish; apps and the router
    keep serving unless --all."""
    settings = Settings.from_env()
    pid = lifecycle.running_pid(settings)
    if pid is None and not everything:
        raise CliError(f"no rack is running under {settings.home}")
    if pid is not None:
        progress(f"Stopping rack (pid {pid})...")
        waited: list[lifecycle.Work] = []

        def waiting(work: lifecycle.Work) -> None:
            if not waited:
                done("")
            waited.append(work)
            click.echo(f"Waiting for {work} to finish...")

        left = lifecycle.stop_rack(settings, pid, timeout=timeout, force=force, waiting=waiting)
        done("OK" if waited else " OK")
        for work in left:
            then = (
                "the next `shipmate rack start` reverts it"
                if work.kind == "promotion"
                else "run the build again"
            )
            click.echo(f"Interrupted: {work}; {then}", err=True)
    if not everything:
        return
    # Apps before the router, so no request reaches a router that has nowhere to send it.
    progress("Stopping app processes...")
    count = lifecycle.stop_apps(settings)
    done(f" OK ({count})")
    router = lifecycle.router_pid(settings)
    if router is not None:
        progress(f"Stopping router (pid {router})...")
        lifecycle.stop_router(settings)
        done()


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
        progress(
            f"{verb} the state store {change.where} from {change.before or 'empty'} "
            f"to {change.after}..."
        )
        store.apply(change)
        done()


def register(cli: click.Group) -> None:
    cli.add_command(rack)
