"""What the console's pages show, put together from the use cases: the release timeline and
the last line of a promotion, worded as the CLI words them."""

from __future__ import annotations

from dataclasses import dataclass

from shipmate.domain.promotion import State, failure_message
from shipmate.services import history, releases
from shipmate.services.context import Context
from shipmate.structs import Promotion, Release


@dataclass(frozen=True)
class Row:
    release: Release
    status: str  # active, reverted or blank, as `releases` shows it
    promotions: list[history.Entry]  # newest first
    diff: history.ReleaseDiff | None  # against the release before it; None for the first


def timeline(ctx: Context, app: str, limit: int) -> list[Row]:
    """The app's releases, newest first, each with its promotions and its diff against the
    release before it (values masked: the timeline is a summary, `releases diff --reveal`
    is for those who need the values)."""
    # One more than shown: the oldest row shown has a predecessor to diff against.
    listed = releases.list_releases(ctx, app, limit + 1)
    status = releases.statuses(ctx, app, listed)
    entries = history.promotions(ctx, app, 1000)
    rows = []
    for i, release in enumerate(listed[:limit]):
        previous = listed[i + 1] if i + 1 < len(listed) else None
        diff = history.diff(ctx, app, previous.id, release.id, reveal=False) if previous else None
        mine = [e for e in entries if e.promotion.release_id == release.id]
        rows.append(Row(release, status[release.id], mine, diff))
    return rows


def intro(promotion: Promotion, release: Release) -> str:
    """The CLI's first line for the promotion."""
    if promotion.kind == "rollback" and release.copied_from:
        return f"Rolling back to {release.copied_from}..."
    if promotion.kind in ("promote", "rollback"):
        return f"Promoting {release.id}..."
    return f"{promotion.kind.capitalize()} of {release.id}..."


def final_line(promotion: Promotion) -> str | None:
    """The CLI's last line once the promotion has ended (None while it runs): `OK, <copy>`
    after a rollback, `OK` after a promotion, `ERROR: ...` when it failed or was reverted."""
    if promotion.state is State.CANARY:
        return (
            f"OK, canary: {promotion.release_id} serves part of the requests; "
            f"`shipmate releases promote --continue -a {promotion.app}` completes it"
        )
    if promotion.finished_at is None:
        return None
    if promotion.succeeded:
        return f"OK, {promotion.release_id}" if promotion.kind == "rollback" else "OK"
    return f"ERROR: {failure_message(promotion)}"
