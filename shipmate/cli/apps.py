"""`shipmate apps ...`."""

from __future__ import annotations

import click

from shipmate.cli.canary import watch_progress
from shipmate.cli.client import CliError
from shipmate.cli.common import app_name, app_option, client, json_option
from shipmate.cli.output import done, keyvalues, print_json, progress, table
from shipmate.domain.ids import validate_app_name


@click.group("apps", invoke_without_command=True)
@json_option
@click.pass_context
def apps(ctx: click.Context, as_json: bool) -> None:
    """List apps; subcommands create, inspect and delete them."""
    if ctx.invoked_subcommand is not None:
        return
    found = client().get("/apps")
    if as_json:
        print_json(found)
        return
    table(
        ["app", "status", "release"], [[a["name"], a["status"], a["release"] or ""] for a in found]
    )


@apps.command("create")
@click.argument("name", required=False)
@app_option
def create(name: str | None, app: str | None) -> None:
    """Create an app."""
    name = app_name(app) if name is None else validate_app_name(name)
    progress(f"Creating {name}...")
    client().post("/apps", json={"name": name})
    done()


@apps.command("info")
@app_option
@json_option
def info(app: str | None, as_json: bool) -> None:
    """Show an app."""
    found = client().get(f"/apps/{app_name(app)}")
    if as_json:
        print_json(found)
        return
    routes = "\n".join(f"{url}" for _, url in sorted(found["router"].items()))
    keyvalues(
        [
            ("Name", found["name"]),
            ("Status", found["status"]),
            ("Release", found["release"] or ""),
            ("Router", routes),
            *([("Domains", "\n".join(found["domains"]))] if found.get("domains") else []),
        ]
    )


@apps.command("settings")
@click.option(
    "--keep",
    metavar="N|all",
    default=None,
    help="Keep the builds of the N newest releases (and the active, previous and pinned "
    "ones); `shipmate builds prune` removes the others. Default: all.",
)
@app_option
@json_option
def settings(keep: str | None, app: str | None, as_json: bool) -> None:
    """Show or change an app's settings."""
    path = f"/apps/{app_name(app)}/settings"
    if keep is None:
        found = client().get(path)
    elif keep == "all":
        found = client().post(path, json={"keep": None})
    elif keep.isdigit():
        found = client().post(path, json={"keep": int(keep)})
    else:
        raise CliError(f"--keep takes a number of releases or `all`, not {keep!r}")
    if as_json:
        print_json(found)
        return
    keyvalues([("Keep", "all" if found["keep"] is None else f"{found['keep']} releases")])


@apps.command("cancel")
@app_option
def cancel(app: str | None) -> None:
    """Stop the promotion in progress and revert to the previous active release."""
    api = client()
    name = app_name(app)
    promotion = api.post(f"/apps/{name}/cancel")
    click.echo(f"Cancelling the promotion of {promotion['release']}...")
    for kind, data in api.stream(f"/apps/{name}/promotions/{promotion['id']}/events"):
        if kind == "event":
            click.echo(data["line"])
        elif kind == "done" and data["state"] != "Reverted":
            raise CliError(f"the revert did not complete: {data['state']}: {data['reason']}")
    click.echo("OK")


@apps.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete an app: stop its processes and remove its builds, releases and events."""
    validate_app_name(name)
    progress(f"Deleting {name}...")
    client().delete(f"/apps/{name}")
    done()


@apps.command("watch")
@app_option
def watch(app: str | None) -> None:
    """Show the watch of the app's latest promotion as it goes, until it is over."""
    watch_progress(client(), app_name(app))


def register(cli: click.Group) -> None:
    cli.add_command(apps)
