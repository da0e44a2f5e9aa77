"""`shipmate rack tokens`, `shipmate rack rotate-key` and `shipmate audit`."""

from __future__ import annotations

import click

from shipmate.cli.common import client, json_option
from shipmate.cli.output import done, parse_time, print_json, progress, relative, table
from shipmate.domain.humanize import rfc3339

ROLES = ("viewer", "deployer", "admin")


@click.group("tokens", invoke_without_command=True)
@json_option
@click.pass_context
def tokens(ctx: click.Context, as_json: bool) -> None:
    """List API tokens (never their secrets); admin only."""
    if ctx.invoked_subcommand is not None:
        return
    found = client().get("/rack/tokens")
    if as_json:
        print_json(found)
        return
    table(
        ["name", "role", "created", "last-used", "status"],
        [
            [t["name"], t["role"], relative(t["created"]), relative(t["last_used"]), t["status"]]
            for t in found
        ],
    )


@tokens.command("create")
@click.option("--name", required=True, metavar="NAME", help="Unique name, shown in the audit.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the token may do.")
@json_option
def create(name: str, role: str, as_json: bool) -> None:
    """Create a token and print it: this is the only time it is shown."""
    created = client().post("/rack/tokens", json={"name": name, "role": role})
    if as_json:
        print_json(created)
        return
    click.echo(f"Created token {name} ({role}); it is shown only this once:")
    click.echo(created["token"])


@tokens.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke a token: its next request is refused."""
    progress(f"Revoking {name}...")
    client().delete(f"/rack/tokens/{name}")
    done()


@click.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every release environment with a new secret key."""
    progress("Rotating the secret key...")
    result = client().post("/rack/rotate-key")
    done(f" OK ({result['reencrypted']} release environments re-encrypted)")


@click.command("audit")
@click.option("-a", "--app", "app", default=None, metavar="NAME", help="Only this app's entries.")
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@json_option
def audit(app: str | None, limit: int, as_json: bool) -> None:
    """Who changed what, newest first."""
    params: dict[str, str | int] = {"limit": limit}
    if app:
        params["app"] = app
    found = client().get("/audit", params=params)
    if as_json:
        print_json(found)
        return
    table(
        ["time", "actor", "action", "app", "target", "detail"],
        [
            [
                rfc3339(parse_time(e["time"])),
                e["actor"],
                e["action"],
                e["app"] or "",
                e["target"],
                e["detail"],
            ]
            for e in found
        ],
    )


def register(cli: click.Group) -> None:
    rack = cli.commands["rack"]
    assert isinstance(rack, click.Group)
    rack.add_command(tokens)
    rack.add_command(rotate_key)
    cli.add_command(audit)
