"""`shipmate domains [add|remove]` and `shipmate certs [import]`."""

from __future__ import annotations

from pathlib import Path

import click

from shipmate.cli.client import CliError
from shipmate.cli.common import app_name, app_option, client, json_option
from shipmate.cli.output import done, print_json, progress, table


@click.group("domains", invoke_without_command=True)
@app_option
@json_option
@click.pass_context
def domains(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """List an app's custom domains; `add` and `remove` change them."""
    if ctx.invoked_subcommand is not None:
        return
    found = client().get(f"/apps/{app_name(app)}/domains")
    if as_json:
        print_json(found)
        return
    table(["domain", "service", "source"], [[d["name"], d["service"], d["source"]] for d in found])


@domains.command("add")
@click.argument("name")
@click.option("--service", default=None, help="default: the app's routed service")
@app_option
def add(name: str, service: str | None, app: str | None) -> None:
    """Route NAME (or *.example.com) to a service of the app."""
    target = app_name(app)
    progress(f"Adding {name} to {target}...")
    client().post(f"/apps/{target}/domains", json={"name": name, "service": service})
    done()


@domains.command("remove")
@click.argument("name")
@app_option
def remove(name: str, app: str | None) -> None:
    """Stop routing NAME to the app."""
    target = app_name(app)
    progress(f"Removing {name} from {target}...")
    client().delete(f"/apps/{target}/domains/{name}")
    done()


@click.group("certs", invoke_without_command=True)
@json_option
@click.pass_context
def certs(ctx: click.Context, as_json: bool) -> None:
    """List the rack's certificates; `import` adds one of your own."""
    if ctx.invoked_subcommand is not None:
        return
    found = client().get("/certs")
    if as_json:
        print_json(found)
        return
    rows = [[c["domain"], c["issuer"], c["expires"][:10], c["status"]] for c in found]
    table(["domain", "issuer", "expires", "status"], rows)


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CliError(f"cannot read the {what} {path}: {reason}") from None


@certs.command("import")
@click.argument("name")
@click.argument("cert", metavar="CERT")
@click.argument("key", metavar="KEY")
def import_(name: str, cert: str, key: str) -> None:
    """Serve CERT (PEM, with its chain) and KEY for the domain NAME."""
    cert_pem, key_pem = _read(cert, "certificate"), _read(key, "key")
    progress(f"Importing certificate for {name}...")
    found = client().post("/certs", json={"name": name, "cert": cert_pem, "key": key_pem})
    done(f" OK, expires {found['expires'][:10]}")


def register(cli: click.Group) -> None:
    cli.add_command(domains)
    cli.add_command(certs)
