"""`shipmate env ...`: each change is a new release."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import click

from shipmate.cli.client import CliError
from shipmate.cli.common import (
    F,
    app_name,
    app_option,
    client,
    json_option,
    no_wait_option,
    promote,
    release_id_arg,
    wait_for_lock_option,
    wait_option,
)
from shipmate.cli.output import done, note, print_json, progress
from shipmate.domain.envs import format_env, parse_assignments, validate_keys
from shipmate.domain.errors import InvalidInput

_QUOTES = ('"', "'")


@click.group("env", invoke_without_command=True)
@app_option
@json_option
@click.pass_context
def env(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """Print the environment of the latest release."""
    if ctx.invoked_subcommand is not None:
        return
    found = client().get(f"/apps/{app_name(app)}/environment")
    note(found.get("note"))
    values = found["env"]
    if as_json:
        print_json(values)
        return
    for line in format_env(values):
        click.echo(line)


@env.command("get")
@click.argument("key")
@app_option
@json_option
def get(key: str, app: str | None, as_json: bool) -> None:
    """Print one variable."""
    values = client().get(f"/apps/{app_name(app)}/environment")["env"]
    if key not in values:
        raise CliError(f"no such variable: {key}")
    if as_json:
        print_json({key: values[key]})
        return
    click.echo(values[key])


def read_env_lines(text: str, where: str) -> list[str]:
    """`KEY=value` assignments of a .env file: blank lines and `#` comments skipped,
    `export KEY=value` accepted, one pair of quotes around a value removed, spaces around
    an unquoted value dropped (as dotenv and Heroku read them)."""
    found: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] in _QUOTES and value[-1] == value[0]:
            value = value[1:-1]
        assignment = f"{key.rstrip()}{sep}{value}"
        try:
            parse_assignments([assignment])
        except InvalidInput as exc:
            raise InvalidInput(f"{where}, line {number}: {exc}") from None
        found.append(assignment)
    return found


def _quoted(value: str) -> str:
    """`value` as read_env_lines gives it back unchanged."""
    bare = value == value.strip() and not (
        len(value) >= 2 and value[0] in _QUOTES and value[-1] == value[0]
    )
    return value if bare else f'"{value}"'


def _change(
    app: str | None,
    set_: list[str],
    unset: list[str],
    replace: bool,
    go: bool,
    wait: float | None,
    wait_for_lock: bool = False,
    no_wait: bool = False,
    base: str | None = None,
) -> None:
    name = app_name(app)
    api = client()
    body = {"set": set_, "unset": unset, "replace": replace, "release": base}
    result = api.post(f"/apps/{name}/environment", json=body)
    done()
    note(result.get("note"))
    release = result["release"]
    if release is None:
        click.echo("No change: the environment already has these values; no release created")
        return
    click.echo(f"Release: {release['id']}")
    if go:
        promote(api, name, release["id"], wait, wait_for_lock, no_wait)


def base_option(f: F) -> F:
    return click.option(
        "--release",
        "base",
        default=None,
        metavar="R",
        help="Change release R (its build and environment) rather than the latest.",
    )(f)


@env.command("set")
@click.argument("assignments", nargs=-1, metavar="KEY=value... | -")
@app_option
@click.option(
    "--file",
    "env_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read KEY=value lines from FILE (a .env file).",
)
@click.option("--promote", "go", is_flag=True, help="Promote the new release.")
@click.option("--replace", is_flag=True, help="Replace the whole environment with these.")
@base_option
@wait_option
@wait_for_lock_option
@no_wait_option
def set_(
    assignments: tuple[str, ...],
    app: str | None,
    env_file: Path | None,
    go: bool,
    replace: bool,
    base: str | None,
    wait: float | None,
    wait_for_lock: bool,
    no_wait: bool,
) -> None:
    """Set variables: creates a release (promoted with --promote).

    `-` reads KEY=value lines from stdin (`shipmate env set - < .env`), as --file does from a
    file: blank lines and # comments are skipped, `export KEY=value` is accepted.
    """
    given: list[str] = []
    if env_file is not None:
        given += read_env_lines(env_file.read_text(), str(env_file))
    for item in assignments:
        given += read_env_lines(sys.stdin.read(), "stdin") if item == "-" else [item]
    if not given:
        raise CliError(
            "nothing to set: give KEY=value assignments, `-` to read them from stdin, "
            "or --file FILE"
        )
    keys = sorted(parse_assignments(given))  # refuse bad input before printing
    base = release_id_arg(base) if base is not None else None
    progress(f"Setting {', '.join(keys)}...")
    _change(app, given, [], replace, go, wait, wait_for_lock, no_wait, base)


@env.command("unset")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@app_option
@click.option("--promote", "go", is_flag=True, help="Promote the new release.")
@base_option
@wait_option
@wait_for_lock_option
@no_wait_option
def unset(
    keys: tuple[str, ...],
    app: str | None,
    go: bool,
    base: str | None,
    wait: float | None,
    wait_for_lock: bool,
    no_wait: bool,
) -> None:
    """Remove variables: creates a release (promoted with --promote)."""
    names = validate_keys(keys)
    base = release_id_arg(base) if base is not None else None
    progress(f"Unsetting {', '.join(names)}...")
    _change(app, [], names, False, go, wait, wait_for_lock, no_wait, base)


_EDIT_HEADER = (
    "# The environment of {app}'s latest release: one KEY=value a line. Saving makes one\n"
    "# release with the change; quitting without saving, or with no change, makes none.\n"
)


@env.command("edit")
@app_option
@click.option("--promote", "go", is_flag=True, help="Promote the new release.")
@wait_option
@wait_for_lock_option
@no_wait_option
def edit(app: str | None, go: bool, wait: float | None, wait_for_lock: bool, no_wait: bool) -> None:
    """Edit the environment in $VISUAL or $EDITOR: one release from the edit."""
    name = app_name(app)
    current: Mapping[str, str] = client().get(f"/apps/{name}/environment")["env"]
    multiline = sorted(k for k, v in current.items() if "\n" in v)
    if multiline:
        raise CliError(
            f"env edit cannot show multi-line values ({', '.join(multiline)}): "
            "use `shipmate env set`"
        )
    text = _EDIT_HEADER.format(app=name) + "".join(
        f"{key}={_quoted(current[key])}\n" for key in sorted(current)
    )
    # An editor that fails raises ClickException (one ERROR line, nothing changed).
    edited = click.edit(text, extension=".env", require_save=True)
    if edited is None:
        click.echo("No change: the environment was not saved; no release created")
        return
    wanted = parse_assignments(read_env_lines(edited, "the edited environment"))
    set_ = [f"{k}={v}" for k, v in sorted(wanted.items()) if current.get(k) != v]
    unset = sorted(k for k in current if k not in wanted)
    if not set_ and not unset:
        click.echo("No change: the environment already has these values; no release created")
        return
    changed = sorted({s.partition("=")[0] for s in set_} | set(unset))
    progress(f"Changing {', '.join(changed)}...")
    _change(name, set_, unset, False, go, wait, wait_for_lock, no_wait)


def register(cli: click.Group) -> None:
    cli.add_command(env)
