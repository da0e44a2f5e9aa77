"""Options and helpers shared by the CLI's command groups."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from shipmate.cli.client import Client, CliError
from shipmate.domain.errors import ErrorCode
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


def app_name(app: str | None) -> str:
    return app or Path.cwd().name


def client() -> Client:
    return Client.from_env()


def follow_promotion(api: Client, app: str, promotion_id: str) -> dict[str, Any]:
    """Print the promotion's events as they happen; raise unless it succeeded."""
    final: dict[str, Any] | None = None
    for kind, data in api.stream(f"/apps/{app}/promotions/{promotion_id}/events"):
        if kind == "event":
            click.echo(data["line"])
        elif kind == "done":
            final = data
    if final is None:
        raise CliError(
            f"the event stream of promotion {promotion_id} ended early; "
            "check `shipmate releases` and `shipmate logs`"
        )
    if not final["succeeded"]:
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
    api: Client, path: str, wait: float | None, wait_for_lock: bool
) -> dict[str, Any]:
    """POST a promote or rollback; with `wait_for_lock`, wait out a running promotion first."""
    try:
        started: dict[str, Any] = api.post(path, json={"wait": wait})
        return started
    except CliError as exc:
        if not wait_for_lock or exc.code != ErrorCode.APP_BUSY:
            raise
        running = exc.details.get("release") or "another release"
    click.echo(f"Waiting for the promotion of {running} to finish...")
    # The rack answers once it has started ours, however long the running one takes.
    started = api.post(
        path,
        json={"wait": wait, "wait_for_lock": True},
        timeout=httpx.Timeout(60.0, read=None),
    )
    return started


def promote(
    api: Client, app: str, release_id: str, wait: float | None, wait_for_lock: bool = False
) -> None:
    click.echo(f"Promoting {release_id}...")
    started = start_promotion(
        api, f"/apps/{app}/releases/{release_id}/promote", wait, wait_for_lock
    )
    follow_promotion(api, app, started["promotion"]["id"])
    click.echo("OK")
