"""`shipmate releases ...`: list, inspect, promote, roll back."""

from __future__ import annotations

import subprocess
from typing import Any

import click

from shipmate.cli import canary as canary_cli
from shipmate.cli.client import CliError
from shipmate.cli.common import (
    app_name,
    app_option,
    client,
    follow_started,
    json_option,
    no_wait_option,
    promote,
    release_id_arg,
    start_promotion,
    wait_for_lock_option,
    wait_option,
)
from shipmate.cli.output import keyvalues, parse_time, print_json, relative, table
from shipmate.domain.envs import format_env
from shipmate.domain.humanize import rfc3339


@click.group("releases", invoke_without_command=True)
@app_option
@json_option
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True)
@click.pass_context
def releases(ctx: click.Context, app: str | None, as_json: bool, limit: int) -> None:
    """List releases, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    found = client().get(f"/apps/{app_name(app)}/releases", params={"limit": limit})
    if as_json:
        print_json(found)
        return
    table(
        ["id", "status", "build", "created", "description"],
        [
            [
                r["id"],
                r.get("status", "active" if r["active"] else ""),
                r["build"] or "",
                relative(r["created"]),
                r["description"],
            ]
            for r in found
        ],
    )


@releases.command("info")
@click.argument("release_id")
@app_option
@json_option
def info(release_id: str, app: str | None, as_json: bool) -> None:
    """Show a release: build, environment, origin and promotions."""
    r = client().get(f"/apps/{app_name(app)}/releases/{release_id_arg(release_id)}")
    if as_json:
        print_json(r)
        return
    pairs = [
        ("Id", r["id"]),
        ("Build", r["build"] or ""),
        ("Created", rfc3339(parse_time(r["created"]))),
        ("Created by", r.get("created_by") or ""),
        ("Description", r["description"]),
    ]
    if r["active"]:
        pairs.append(("Status", "active"))
    if r.get("pinned"):
        pairs.append(("Pinned", "yes: its build is never pruned"))
    if r["copied_from"]:
        pairs.append(("Copied from", r["copied_from"]))
    promotions = [
        f"{p['id']}  {p['kind']}  {_outcome(p)}  {rfc3339(parse_time(p['created']))}"
        + (f"  by {p['created_by']}" if p.get("created_by") else "")
        + (f"  {p['reason']}" if p["reason"] else "")
        for p in r["promotions"]
    ]
    pairs.append(("Promotions", "\n".join(promotions)))
    pairs.append(("Env", "\n".join(format_env(r["env"]))))
    keyvalues(pairs)


def _outcome(promotion: dict[str, Any]) -> str:
    if promotion["succeeded"]:
        return "succeeded"
    if promotion["finished"] is None:
        return f"in progress ({promotion['state']})"
    return "failed" if promotion["state"] == "Failure" else "reverted"


@releases.command("render")
@click.argument("release_id")
@app_option
@click.option(
    "--runtime",
    type=click.Choice(["kubernetes"]),
    default="kubernetes",
    show_default=True,
    help="The runtime whose objects to print.",
)
def render(release_id: str, app: str | None, runtime: str) -> None:
    """Print the objects promoting a release would apply (YAML documents), Secret values
    elided."""
    path = f"/apps/{app_name(app)}/releases/{release_id_arg(release_id)}/render"
    text = client().request("GET", path).text
    click.echo(text, nl=not text.endswith("\n"))


@releases.command("manifest")
@click.argument("release_id")
@app_option
@json_option
def manifest(release_id: str, app: str | None, as_json: bool) -> None:
    """Print the manifest of a release (YAML, or with --json its data as JSON)."""
    path = f"/apps/{app_name(app)}/releases/{release_id_arg(release_id)}/manifest"
    text = client().request("GET", path).text
    if as_json:
        import yaml  # only here: the other commands have no use for it

        print_json(yaml.safe_load(text) if text.strip() else None)
        return
    click.echo(text, nl=not text.endswith("\n"))


@releases.command("promote")
@click.argument("release_id", required=False)
@app_option
@wait_option
@wait_for_lock_option
@no_wait_option
@canary_cli.canary_option
@canary_cli.no_watch_option
@click.option("--continue", "go_on", is_flag=True, help="Complete the app's canary.")
@click.option("--abort", is_flag=True, help="End the app's canary: all requests to the old.")
def promote_cmd(
    release_id: str | None,
    app: str | None,
    wait: float | None,
    wait_for_lock: bool,
    no_wait: bool,
    canary: int | None,
    no_watch: bool,
    go_on: bool,
    abort: bool,
) -> None:
    """Promote a release (default: the latest) with a rolling update, or first as a canary."""
    api = client()
    name = app_name(app)
    if go_on or abort:
        if (go_on and abort) or release_id or canary is not None:
            raise click.UsageError("--continue and --abort take no release and no --canary")
        canary_cli.decide(api, name, "continue" if go_on else "abort")
        return
    if release_id is None:
        latest = api.get(f"/apps/{name}/releases", params={"limit": 1})
        if not latest:
            raise click.ClickException(f"app {name} has no release yet: run `shipmate deploy`")
        release_id = latest[0]["id"]
    extra = canary_cli.body(canary, no_watch)
    promote(api, name, release_id_arg(release_id), wait, wait_for_lock, no_wait, extra)


@releases.command("rollback")
@click.argument("release_id")
@app_option
@wait_option
@wait_for_lock_option
@no_wait_option
@canary_cli.no_watch_option
def rollback(
    release_id: str,
    app: str | None,
    wait: float | None,
    wait_for_lock: bool,
    no_wait: bool,
    no_watch: bool,
) -> None:
    """Copy an earlier release and promote the copy, without rebuilding."""
    name = app_name(app)
    release_id = release_id_arg(release_id)
    api = client()
    started = start_promotion(
        api,
        f"/apps/{name}/releases/{release_id}/rollback",
        wait,
        wait_for_lock,
        canary_cli.body(None, no_watch),
    )
    for warning in started.get("warnings", []):
        click.echo(warning)
    if follow_started(api, name, started, no_wait, f"Rolling back to {release_id}..."):
        click.echo(f"OK, {started['release']['id']}")


def register(cli: click.Group) -> None:
    cli.add_command(releases)


def _pin_command(name: str, done: str, help_text: str) -> None:
    @releases.command(name, help=help_text)
    @click.argument("release_id")
    @app_option
    def command(release_id: str, app: str | None) -> None:
        client().post(f"/apps/{app_name(app)}/releases/{release_id_arg(release_id)}/{name}")
        click.echo(done.format(release_id))


_pin_command(
    "pin", "Pinned {}: its build is never pruned", "Protect a release's build from pruning."
)
_pin_command(
    "unpin", "Unpinned {}", "Let a release's build be pruned again, when no kept release uses it."
)


@releases.command("history")
@app_option
@json_option
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def history(app: str | None, as_json: bool, limit: int) -> None:
    """Every promotion, newest first: what it was, by whom, when, and how it ended."""
    found = client().get(f"/apps/{app_name(app)}/promotions", params={"limit": limit})
    if as_json:
        print_json(found)
        return
    table(
        # SPEC §8's words: KIND is what the promotion was (its `action` in JSON).
        ["id", "release", "kind", "actor", "started", "ended", "outcome", "reason"],
        [
            [
                p["id"],
                p["release"],
                p["action"],
                p.get("created_by") or "",
                relative(p["created"]),
                relative(p["finished"]) if p["finished"] else "",
                p["outcome"],
                p["reason"] or "",
            ]
            for p in found
        ],
    )


@releases.command("create")
@click.option("--build-from", metavar="R1", default=None, help="Its build (default: latest).")
@click.option("--env-from", metavar="R2", default=None, help="Its environment (default: latest).")
@click.option("--promote", "go", is_flag=True, help="Promote the new release.")
@app_option
@wait_option
@wait_for_lock_option
@no_wait_option
def create(
    build_from: str | None,
    env_from: str | None,
    go: bool,
    app: str | None,
    wait: float | None,
    wait_for_lock: bool,
    no_wait: bool,
) -> None:
    """Make a release from parts: the build of R1 with the environment of R2."""
    body = {
        "build_from": release_id_arg(build_from) if build_from else None,
        "env_from": release_id_arg(env_from) if env_from else None,
    }
    if body == {"build_from": None, "env_from": None}:
        raise CliError("give --build-from R1, --env-from R2, or both")
    name = app_name(app)
    api = client()
    release = api.post(f"/apps/{name}/releases", json=body)
    click.echo(f"Release: {release['id']} ({release['description']})")
    if go:
        promote(api, name, release["id"], wait, wait_for_lock, no_wait)


@releases.command("diff")
@click.argument("from_id", metavar="R1")
@click.argument("to_id", metavar="[R2]", required=False)
@click.option("--reveal", is_flag=True, help="Show values, not `****` (not for viewers).")
@app_option
@json_option
def diff(from_id: str, to_id: str | None, reveal: bool, app: str | None, as_json: bool) -> None:
    """What moving from R1 to R2 (default: the active release) changes: environment, build,
    manifest, and the release commands run in between."""
    params: dict[str, Any] = {"reveal": "true"} if reveal else {}
    if to_id is not None:
        params["to"] = release_id_arg(to_id)
    path = f"/apps/{app_name(app)}/releases/{release_id_arg(from_id)}/diff"
    found = client().get(path, params=params)
    if as_json:
        print_json(found)
        return
    for label, side in (("From", found["from"]), ("To", found["to"])):
        build = f"  {side['build']}" if side["build"] else ""
        active = "  (active)" if side["active"] else ""
        click.echo(f"{label + ':':<6}{side['release']}{build}  {side['description']}{active}")
    env = found["env"]
    lines = [f"  + {k}={v}" for k, v in env["added"].items()]
    lines += [f"  ~ {k}: {old} => {new}" for k, (old, new) in env["changed"].items()]
    lines += [f"  - {k}" for k in env["removed"]]
    click.echo("\n".join(["Environment:" + ("" if lines else " the same"), *lines]))
    old, new = found["from"], found["to"]
    if old["build"] == new["build"]:
        click.echo(f"Build: the same ({new['build'] or 'none'})")
    else:
        click.echo(f"Build: {old['build'] or 'none'} => {new['build'] or 'none'}")
        for side in (old, new):
            if side["build"]:
                click.echo(f"  {side['build']}  {side['build_description'] or ''}".rstrip())
        if old["commit"] and new["commit"]:
            click.echo(f"Commits: {old['commit']}...{new['commit']}")
            for commit in commits_between(old["commit"], new["commit"]):
                click.echo(f"  {commit}")
    manifest = found["manifest"].rstrip("\n")
    click.echo("Manifest:" + (f"\n{manifest}" if manifest else " the same"))
    commands = found["release_commands"]
    click.echo("Release commands in between:" + ("" if commands else " none"))
    for c in commands:
        click.echo(f"  {c['promotion']} of {c['release']}: {c['command']} ({c['state']})")


def commits_between(a: str, b: str) -> list[str]:
    """`git log --oneline` of the commits on one side only, when this directory's repository
    has both (a build names its commit; the rack keeps no repository)."""
    try:
        proc = subprocess.run(
            ["git", "log", "--oneline", "--no-decorate", f"{a}...{b}"],
            capture_output=True,
            text=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return proc.stdout.splitlines() if proc.returncode == 0 else []
