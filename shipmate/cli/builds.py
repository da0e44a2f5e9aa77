"""`shipmate build`, `deploy` and `builds ...`."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import httpx

from shipmate.cli import canary as canary_cli
from shipmate.cli.client import Client, CliError, rack_error
from shipmate.cli.common import (
    app_name,
    app_option,
    build_id_arg,
    client,
    json_option,
    no_wait_option,
    promote,
    wait_for_lock_option,
    wait_option,
)
from shipmate.cli.output import (
    done,
    elapsed,
    keyvalues,
    parse_time,
    print_json,
    progress,
    relative,
    table,
)
from shipmate.cli.pack import create_tarball, git_description
from shipmate.domain.humanize import rfc3339


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def run_build(
    api: Client,
    app: str,
    directory: Path,
    description: str | None,
    build_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Upload `directory`, stream the build log and return the finished build."""
    if not directory.is_dir():
        raise CliError(f"{directory} is not a directory: give the app's source directory")
    description = description or git_description(directory) or ""
    with tempfile.TemporaryFile() as archive:
        progress("Packaging source...")
        size = create_tarball(directory, archive)
        done(f" OK ({_human_size(size)})")
        archive.seek(0)
        progress("Uploading source...")
        build: dict[str, Any] = api.post(
            f"/apps/{app}/builds",
            params={"description": description, "build_arg": list(build_args)},
            content=archive,
            headers={"Content-Type": "application/gzip"},
        )
        done()
    click.echo(f"Starting build {build['id']}...")
    for kind, data in api.stream(f"/apps/{app}/builds/{build['id']}/logs"):
        if kind == "line":
            click.echo(data)
        elif kind == "build":
            build = data
    if build["status"] != "complete":
        raise CliError(f"build {build['id']} failed: {build.get('error') or 'see its log'}")
    click.echo(f"Build:   {build['id']}")
    click.echo(f"Release: {build['release']}")
    return build


build_arg_option = click.option(
    "--build-arg",
    "build_arg",
    multiple=True,
    metavar="KEY=VALUE",
    help="A build argument of the image build (container runtimes); repeatable.",
)


@click.command("build")
@click.argument("directory", default=".", type=click.Path(path_type=Path))
@app_option
@click.option("-d", "--description", default=None, help="Description of the build.")
@build_arg_option
def build_cmd(
    directory: Path, app: str | None, description: str | None, build_arg: tuple[str, ...]
) -> None:
    """Build DIR (default .) into a new release, without promoting it."""
    run_build(client(), app_name(app), directory, description, build_arg)


@click.command("deploy")
@click.argument("directory", default=".", type=click.Path(path_type=Path))
@app_option
@click.option("-d", "--description", default=None, help="Description of the build.")
@build_arg_option
@wait_option
@wait_for_lock_option
@no_wait_option
@canary_cli.canary_option
@canary_cli.no_watch_option
def deploy(
    directory: Path,
    app: str | None,
    description: str | None,
    build_arg: tuple[str, ...],
    wait: float | None,
    wait_for_lock: bool,
    no_wait: bool,
    canary: int | None,
    no_watch: bool,
) -> None:
    """Build DIR (default .) and promote the new release (first as a canary with --canary)."""
    name = app_name(app)
    api = client()
    build = run_build(api, name, directory, description, build_arg)
    extra = canary_cli.body(canary, no_watch)
    promote(api, name, build["release"], wait, wait_for_lock, no_wait, extra)


@click.group("builds", invoke_without_command=True)
@app_option
@json_option
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.pass_context
def builds(ctx: click.Context, app: str | None, as_json: bool, limit: int) -> None:
    """List builds, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    found = client().get(f"/apps/{app_name(app)}/builds", params={"limit": limit})
    if as_json:
        print_json(found)
        return
    table(
        ["id", "status", "release", "started", "elapsed", "description"],
        [
            [
                b["id"],
                b["status"],
                b["release"] or "",
                relative(b["started"] or b["created"]),
                elapsed(b["started"], b["ended"]),
                b["description"],
            ]
            for b in found
        ],
    )


@builds.command("info")
@click.argument("build_id")
@app_option
@json_option
def info(build_id: str, app: str | None, as_json: bool) -> None:
    """Show a build."""
    b = client().get(f"/apps/{app_name(app)}/builds/{build_id_arg(build_id)}")
    if as_json:
        print_json(b)
        return
    pairs = [
        ("Id", b["id"]),
        ("Status", b["status"]),
        ("Release", b["release"] or ""),
        ("Description", b["description"]),
        ("Started", rfc3339(parse_time(b["started"])) if b["started"] else ""),
        ("Elapsed", elapsed(b["started"], b["ended"])),
    ]
    if b["error"]:
        pairs.append(("Error", b["error"]))
    keyvalues(pairs)


@builds.command("logs")
@click.argument("build_id")
@app_option
@json_option
def logs(build_id: str, app: str | None, as_json: bool) -> None:
    """Print a build's log (following it while the build runs); --json: JSON lines."""
    path = f"/apps/{app_name(app)}/builds/{build_id_arg(build_id)}/logs"
    for kind, data in client().stream(path):
        if kind == "line":
            click.echo(json.dumps({"line": data}) if as_json else data)


@builds.command("export")
@click.argument("build_id")
@app_option
def export(build_id: str, app: str | None) -> None:
    """Write build BUILD_ID as a gzip tar to stdout: `shipmate builds export B > build.tgz`."""
    if sys.stdout.isatty():
        raise CliError("the export is binary: redirect it to a file (> build.tgz)")
    path = f"/apps/{app_name(app)}/builds/{build_id_arg(build_id)}/export"
    api = client()
    out = sys.stdout.buffer
    try:
        with api.http.stream("GET", path) as response:
            if response.status_code >= 400:
                response.read()
                raise rack_error(response)
            for chunk in response.iter_bytes():
                out.write(chunk)
    except httpx.TransportError as exc:
        raise CliError(
            f"lost the rack at {api.base_url} ({type(exc).__name__}): the export is incomplete"
        ) from None
    out.flush()


@builds.command("import")
@app_option
def import_(app: str | None) -> None:
    """Import a build exported by `builds export` from stdin; it gets a release, unpromoted."""
    if sys.stdin.isatty():
        raise CliError("give the export on stdin: shipmate builds import < build.tgz")
    name = app_name(app)
    progress("Importing build...")
    found = client().post(
        f"/apps/{name}/builds/import",
        content=sys.stdin.buffer,
        headers={"Content-Type": "application/gzip"},
    )
    done(f" OK (from {found['origin']})")
    click.echo(f"Build:   {found['build']['id']}")
    click.echo(f"Release: {found['release']}")


@builds.command("prune")
@click.option(
    "--dry-run", is_flag=True, help="Say what would go and what it frees; change nothing."
)
@app_option
@json_option
def prune(dry_run: bool, app: str | None, as_json: bool) -> None:
    """Remove the builds no kept release uses (`shipmate apps settings --keep N`)."""
    name = app_name(app)
    found = client().post(f"/apps/{name}/builds/prune", params={"dry_run": str(dry_run).lower()})
    if as_json:
        print_json(found)
        return
    if found["keep"] is None:
        click.echo(
            f"Nothing to prune: {name} keeps every build (`shipmate apps settings --keep N`)"
        )
        return
    if found["builds"]:
        table(
            ["build", "size", "releases"],
            [
                [b["build"], _human_size(b["size"]), " ".join(b["releases"])]
                for b in found["builds"]
            ],
        )
    count = len(found["builds"])
    verb = "Would free" if dry_run else "Freed"
    click.echo(f"{verb} {_human_size(found['freed'])} ({count} build{'s' if count != 1 else ''})")


def register(cli: click.Group) -> None:
    cli.add_command(build_cmd)
    cli.add_command(deploy)
    cli.add_command(builds)
