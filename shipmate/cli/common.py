"""Options and helpers shared by the CLI's command groups."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from shipmate.cli.client import Client, CliError
from shipmate.cli.output import end_progress
from shipmate.domain.errors import ErrorCode, InvalidInput
from shipmate.domain.ids import is_build_id, is_release_id, validate_app_name
from shipmate.domain.promotion import Promotion, State, failure_message

F = TypeVar("F", bound=Callable[..., Any])


def app_option(f: F) -> F:
    return click.option(
        "-a",
        "--app",
        "app",
        default=None,
        metavar="NAME",
        help="App name (default: the current directory's name).",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def wait_option(f: F) -> F:
    return click.option(
        "--wait",
        type=click.FloatRange(min=1),
        default=None,
        metavar="SECONDS",
        help="Deadline of the promotion before it reverts (default: the manifest's, 120).",
    )(f)


def wait_for_lock_option(f: F) -> F:
    return click.option(
        "--wait-for-lock",
        is_flag=True,
        help="If another promotion of the app is running, wait for it to finish, then start.",
    )(f)


def no_wait_option(f: F) -> F:
    return click.option(
        "--no-wait",
        is_flag=True,
        help="Return once the promotion is recorded; `shipmate logs -f` follows it.",
    )(f)


def app_name(app: str | None) -> str:
    """The app named by -a, else the current directory's name; refused before any request
    when it cannot be an app name (`../x` would otherwise reach another API path)."""
    return validate_app_name(Path.cwd().name if app is None else app)


def release_id_arg(release_id: str) -> str:
    """A release id as typed, checked before it goes into a request path."""
    if not release_id.strip():
        raise InvalidInput("a release id is required: see `shipmate releases`")
    if not is_release_id(release_id):
        raise InvalidInput(
            f"invalid release id {release_id!r}: a release id is R and 9 capital letters, "
            "see `shipmate releases`"
        )
    return release_id


def build_id_arg(build_id: str) -> str:
    if not build_id.strip():
        raise InvalidInput("a build id is required: see `shipmate builds`")
    if not is_build_id(build_id):
        raise InvalidInput(
            f"invalid build id {build_id!r}: a build id is B and 9 capital letters, "
            "see `shipmate builds`"
        )
    return build_id


def client() -> Client:
    return Client.from_env()


def follow_promotion(
    api: Client,
    app: str,
    promotion_id: str,
    release_id: str | None = None,
    intro: str | None = None,
    after: int = 0,
) -> dict[str, Any]:
    """Print `intro`, then the promotion's events (after event `after`) as they happen; raise
    unless it succeeded or waits as a canary.

    Ctrl-C stops the printing only: the promotion goes on in the rack, and the user is told
    how to follow or cancel it (exit 130, as a shell reports an interrupted command).
    """
    final: dict[str, Any] | None = None
    try:
        if intro:
            click.echo(intro)
        path = f"/apps/{app}/promotions/{promotion_id}/events"
        for kind, data in api.stream(path, params={"after": after} if after else None):
            if kind == "event":
                click.echo(data["line"])
            elif kind == "done":
                final = data
    except KeyboardInterrupt:
        end_progress()
        what = f"the promotion of {release_id}" if release_id else f"promotion {promotion_id}"
        click.echo(
            f"Interrupted: {what} goes on in the rack; follow it with "
            f"`shipmate logs -a {app} -f`, cancel it with `shipmate apps cancel -a {app}`",
            err=True,
        )
        sys.exit(130)
    if final is None:
        raise CliError(
            f"the event stream of promotion {promotion_id} ended early; "
            "check `shipmate releases` and `shipmate logs`"
        )
    if not final["succeeded"] and final["state"] != "Canary":
        promotion = Promotion(
            id=final["id"],
            app=final["app"],
            release_id=final["release"],
            previous_release_id=final["previous_release"],
            created_at=datetime.fromisoformat(final["created"]),
            kind=final["kind"],
            state=State(final["state"]),
            reason=final["reason"],
            history=[State(s) for s in final["history"]],
        )
        raise CliError(failure_message(promotion))
    return final


def start_promotion(
    api: Client,
    path: str,
    wait: float | None,
    wait_for_lock: bool,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST a promote or rollback; with `wait_for_lock`, wait out a running promotion first.
    `extra`: more of the request's body (`canary`, `watch`)."""
    extra = extra or {}
    try:
        started: dict[str, Any] = api.post(path, json={"wait": wait, **extra})
        return started
    except CliError as exc:
        if not wait_for_lock or exc.code != ErrorCode.APP_BUSY:
            raise
        running = exc.details.get("release") or "another release"
    click.echo(f"Waiting for the promotion of {running} to finish...")
    # The rack answers once it has started ours, however long the running one takes.
    started = api.post(
        path,
        json={"wait": wait, "wait_for_lock": True, **extra},
        timeout=httpx.Timeout(60.0, read=None),
    )
    return started


def started_only(app: str, started: dict[str, Any]) -> None:
    """What --no-wait prints: the promotion is recorded, and where to see it go on."""
    release = started["release"]["id"]
    click.echo(
        f"Promotion {started['promotion']['id']} of {release} started: follow it with "
        f"`shipmate logs -a {app} -f`; `shipmate releases info {release} -a {app}` shows "
        "how it ended"
    )


def promote(
    api: Client,
    app: str,
    release_id: str,
    wait: float | None,
    wait_for_lock: bool = False,
    no_wait: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    # The request first: a refusal (another app's release, a busy app) comes before any
    # `Promoting ...` line.
    started = start_promotion(
        api, f"/apps/{app}/releases/{release_id}/promote", wait, wait_for_lock, extra
    )
    final = follow_started(api, app, started, no_wait, f"Promoting {release_id}...")
    if final is None:
        return
    if final["state"] == "Canary":
        click.echo(
            f"OK, canary: {release_id} serves {(extra or {}).get('canary')}% of requests; "
            f"`shipmate releases promote --continue -a {app}` completes it, `--abort` ends it"
        )
    else:
        click.echo("OK")


def follow_started(
    api: Client, app: str, started: dict[str, Any], no_wait: bool, intro: str
) -> dict[str, Any] | None:
    """Follow a promotion the rack has just started, or with --no-wait say how to; the
    promotion once followed to its successful end or its canary (the caller prints its OK
    line), None with --no-wait."""
    if no_wait:
        started_only(app, started)
        return None
    return follow_promotion(
        api, app, started["promotion"]["id"], started["release"]["id"], intro=intro
    )
