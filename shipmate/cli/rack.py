"""`shipmate rack ...`: start, stop and describe the local rack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

from shipmate.cli.client import CliError
from shipmate.cli.common import client
from shipmate.cli.output import keyvalues
from shipmate.config import DEFAULT_API, DEFAULT_ROUTER, Settings, check_api_binding

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def _running_pid(settings: Settings) -> int | None:
    try:
        pid = int(json.loads(settings.rack_file.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return None if _is_zombie(pid) else pid


def _is_zombie(pid: int) -> bool:
    # A rack that died and was not reaped (its parent is gone and init does not reap, as in
    # some containers) still answers kill(pid, 0), but it is not running.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


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
    pid = _running_pid(settings)
    if pid is not None:
        raise CliError(f"a rack is already running under {settings.home} (pid {pid})")
    if not detach:
        from shipmate.rack import run

        run(settings, api, router)
        return
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.rack_file.unlink(missing_ok=True)
    with settings.log_file.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shipmate.cli.main",
                "rack",
                "start",
                "--api",
                api,
                "--router",
                router,
                *(["--tls-cert", settings.tls_cert] if settings.tls_cert else []),
                *(["--tls-key", settings.tls_key] if settings.tls_key else []),
                *(["--insecure"] if insecure else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CliError(f"the rack did not start: {_last_error(settings)}")
        if settings.rack_file.exists():
            info = json.loads(settings.rack_file.read_text())
            click.echo(
                f"Rack running: API {info['api']}, router {info['router']} "
                f"(pid {process.pid}, log {settings.log_file})"
            )
            return
        time.sleep(0.05)
    process.terminate()
    raise CliError(f"the rack did not answer within {START_TIMEOUT:g}s; see {settings.log_file}")


def _last_error(settings: Settings) -> str:
    try:
        lines = [line for line in settings.log_file.read_text().splitlines() if line.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        if line.startswith("ERROR: "):
            return line.removeprefix("ERROR: ")
    return lines[-1] if lines else f"see {settings.log_file}"


@rack.command("stop")
@click.option("--all", "everything", is_flag=True, help="Stop the app processes and router too.")
def stop(everything: bool) -> None:
    """Stop the rack (the API); apps and the router keep serving unless --all."""
    settings = Settings.from_env()
    pid = _running_pid(settings)
    if pid is None and not everything:
        raise CliError(f"no rack is running under {settings.home}")
    if pid is not None:
        _stop_rack(pid)
    if everything:
        # Apps before the router, so no request reaches a router that has nowhere to send it.
        _stop_apps(settings)
        _stop_router(settings)


def _stop_rack(pid: int) -> None:
    click.echo(f"Stopping rack (pid {pid})...", nl=False)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            click.echo(" OK")
            return
        time.sleep(0.05)
    raise CliError(f"the rack (pid {pid}) did not stop within {STOP_TIMEOUT:g}s")


def _stop_apps(settings: Settings) -> None:
    """Stop the app processes that outlive the rack (`rack stop --all`)."""
    from shipmate.runtimes.local.cleanup import stop_all_processes

    click.echo("Stopping app processes...", nl=False)
    count = stop_all_processes(settings.home)
    click.echo(f" OK ({count})")


def _stop_router(settings: Settings) -> None:
    from shipmate.router import lifecycle as remote
    from shipmate.router.home import Paths

    paths = Paths(settings.home)
    info = remote.running(paths)
    if info is None:
        return
    click.echo(f"Stopping router (pid {info.pid})...", nl=False)
    remote.stop(paths)
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
    from shipmate.store import db

    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    store = db.Store(settings.database_url)
    try:
        where = db.safe_url(store.url)
        before = db.current_revision(store.engine)
        after = target or db.head_revision()
        db.check_known(before, after)
        known = db.known_revisions()
        downgrade = before is not None and known.index(after) < known.index(before)
        if downgrade and _running_pid(settings) is not None:
            raise CliError(
                f"a rack is running under {settings.home} with schema {before}: "
                "stop it (`shipmate rack stop`) before downgrading"
            )
        if before == after:
            click.echo(f"The state store {where} is at schema {before}: nothing to do")
            return
        verb = "Downgrading" if downgrade else "Migrating"
        click.echo(
            f"{verb} the state store {where} from {before or 'empty'} to {after}...", nl=False
        )
        store.migrate(after)
        click.echo(" OK")
    finally:
        store.close()


def register(cli: click.Group) -> None:
    cli.add_command(rack)
