"""`shipmate env ...`: each change is a new release."""

from __future__ import annotations

import click

from shipmate.cli.client import CliError
from shipmate.cli.common import (
    app_name,
    app_option,
    client,
    json_option,
    promote,
    wait_for_lock_option,
    wait_option,
)
from shipmate.cli.output import print_json
from shipmate.domain.envs import format_env, parse_assignments, validate_keys


@click.group("env", invoke_without_command=True)
@app_option
@json_option
@click.pass_context
def env(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """Print the environment of the latest release."""
    if ctx.invoked_subcommand is not None:
        return
    values = client().get(f"/apps/{app_name(app)}/environment")["env"]
    if as_json:
        print_json(values)
        return
    for line in format_env(values):
        click.echo(line)


@env.command("get")
@click.argument("key")
@app_option
def get(key: str, app: str | None) -> None:
    """Print one variable."""
    values = client().get(f"/apps/{app_name(app)}/environment")["env"]
    if key not in values:
        raise CliError(f"no such variable: {key}")
    click.echo(values[key])


def _change(
    app: str | None,
    set_: list[str],
    unset: list[str],
    replace: bool,
    go: bool,
    wait: float | None,
    wait_for_lock: bool = False,
) -> None:
    name = app_name(app)
    api = client()
    result = api.post(
        f"/apps/{name}/environment", json={"set": set_, "unset": unset, "replace": replace}
    )
    click.echo(" OK")
    release = result["release"]
    if release is None:
        click.echo("No change: the environment already has these values; no release created")
        return
    click.echo(f"Release: {release['id']}")
    if go:
        promote(api, name, release["id"], wait, wait_for_lock)


@env.command("set")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=value...")
@app_option
@click.option("--promote", "go", is_flag=True, help="Promote the new release.")
@click.option("--replace", is_flag=True, help="Replace the whole environment with these.")
@wait_option
@wait_for_lock_option
def set_(
    assignments: tuple[str, ...],
    app: str | None,
    go: bool,
    replace: bool,
    wait: float | None,
    wait_for_lock: bool,
) -> None:
    """Set variables: creates a release (promoted with --promote)."""
    keys = sorted(parse_assignments(assignments))  # refuse bad input before printing
    click.echo(f"Setting {', '.join(keys)}...", nl=False)
    _change(app, list(assignments), [], replace, go, wait, wait_for_lock)


@env.command("unset")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@app_option
@click.option("--promote", "go", is_flag=True, help="Promote the new release.")
@wait_option
@wait_for_lock_option
def unset(
    keys: tuple[str, ...], app: str | None, go: bool, wait: float | None, wait_for_lock: bool
) -> None:
    """Remove variables: creates a release (promoted with --promote)."""
    names = validate_keys(keys)
    click.echo(f"Unsetting {', '.join(names)}...", nl=False)
    _change(app, [], names, False, go, wait, wait_for_lock)


def register(cli: click.Group) -> None:
    cli.add_command(env)
