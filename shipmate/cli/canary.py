"""Canary and watch options of the promoting commands, `releases promote --continue|--abort`
and `apps watch`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from shipmate.cli.client import Client, CliError
from shipmate.cli.common import follow_promotion

F = TypeVar("F", bound=Callable[..., Any])


def no_watch_option(f: F) -> F:
    return click.option(
        "--no-watch",
        is_flag=True,
        help="Do not watch the new release's answers (the manifest's deployment.watch).",
    )(f)


def canary_option(f: F) -> F:
    return click.option(
        "--canary",
        type=click.IntRange(1, 99),
        default=None,
        metavar="PERCENT",
        help="First send this % of requests to the new release, beside the active one.",
    )(f)


def body(canary: int | None, no_watch: bool) -> dict[str, Any]:
    """The promote request's options."""
    extra: dict[str, Any] = {}
    if canary is not None:
        extra["canary"] = canary
    if no_watch:
        extra["watch"] = False
    return extra


def decide(api: Client, app: str, action: str) -> None:
    """`releases promote --continue` or `--abort`: decide and follow the promotion to its end."""
    answer = api.post(f"/apps/{app}/canary", json={"action": action})
    promotion = answer["promotion"]
    release = promotion["release"]
    intro = f"Completing canary {release}..." if action == "continue" else f"Aborting {release}..."
    try:
        follow_promotion(api, app, promotion["id"], release, intro=intro, after=answer["after"])
    except CliError:
        # An abort ends in Reverted by design: the old release serves every request again.
        # Anything else (a revert that failed too, a stream cut short) is the error it says.
        ended = api.get(f"/apps/{app}/promotions/{promotion['id']}")
        if action == "continue" or ended["state"] != "Reverted":
            raise
        click.echo(f"OK, canary aborted: {promotion['previous_release'] or 'nothing'} is active")
        return
    click.echo("OK")


def watch_progress(api: Client, app: str, interval: float = 1.0) -> None:
    """Print the app's watch as it goes, until it is over."""
    last = ""
    while True:
        w = api.get(f"/apps/{app}/watch")
        what = "canary " if w["canary"] else ""
        p95 = f", p95 {w['p95_ms']} ms" if w["p95_ms"] is not None else ""
        line = (
            f"{what}{w['release']}: {w['elapsed']:.0f} s of {w['duration']} s, "
            f"{w['requests']} requests, 5xx {w['errors_percent']:g}%{p95}: {w['outcome']}"
        )
        if line != last:
            click.echo(line)
            last = line
        if w["outcome"] != "watching":
            click.echo(w["reason"])
            return
        time.sleep(interval)
