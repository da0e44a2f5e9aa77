"""What the console streams: a promotion's events, a build's log and the app's logs, as
Server-Sent Events behind the session cookie (an EventSource cannot send a bearer token),
and the logs page, which shows the same lines without JavaScript."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.sse import ServerSentEvent

from shipmate.api.schemas import EventOut
from shipmate.api.sse import EventStream
from shipmate.domain.humanize import utcnow
from shipmate.domain.ids import validate_app_name
from shipmate.services import apps, builds, releases
from shipmate.services import logs as app_logs
from shipmate.structs import Event
from shipmate.web.access import ConsoleError, context_of, need
from shipmate.web.render import ConsoleRoute, page
from shipmate.web.timeline import final_line

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Without --tail the page shows at most this many lines: a long --since stays readable.
PAGE_LINES = 500


@router.get("/apps/{app}/promotions/{promotion_id}/events")
async def promotion_events(request: Request, app: str, promotion_id: str) -> EventStream:
    need(request, "GET", "/apps/{app}/promotions/{promotion_id}/events")
    ctx = context_of(request)
    found = releases.get_promotion(ctx, validate_app_name(app), promotion_id)
    # An EventSource that reconnects says where it was: no event twice.
    after = max(
        _count(request.query_params.get("after")), _count(request.headers.get("last-event-id"))
    )

    async def events() -> AsyncIterator[ServerSentEvent]:
        items = releases.follow_promotion(ctx, app, found.id, request.is_disconnected, after)
        async for item in items:
            if isinstance(item, Event):
                line = EventOut.of(item).line
                yield ServerSentEvent(data={"line": line}, event="line", id=str(item.id))
            else:
                yield ServerSentEvent(data={"line": final_line(item)}, event="done")

    return EventStream(events())


@router.get("/apps/{app}/builds/{build_id}/log")
async def build_log(request: Request, app: str, build_id: str) -> EventStream:
    need(request, "GET", "/apps/{app}/builds/{build_id}/logs")
    ctx = context_of(request)
    build = builds.get_build(ctx, validate_app_name(app), build_id)
    skip = _count(request.query_params.get("after"))

    async def events() -> AsyncIterator[ServerSentEvent]:
        seen = 0
        async for line in builds.follow_log(ctx, app, build.id, True, request.is_disconnected):
            seen += 1
            if seen > skip:
                yield ServerSentEvent(data={"line": line}, event="line")
        final = builds.get_build(ctx, app, build.id)
        yield ServerSentEvent(data={"line": f"build {final.status}"}, event="done")

    return EventStream(events())


def _count(text: str | None) -> int:
    return int(text) if text and text.isdigit() else 0


def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    return {k: q.get(k, "").strip() for k in ("since", "tail", "service", "filter")}


def _since(text: str) -> float:
    found = _DURATION.match(text or "2m")
    if not found:
        raise ConsoleError(400, f"since {text!r}: use a number and a unit, like 30s, 2m, 1h or 1d")
    return int(found.group(1)) * _UNITS[found.group(2)]


def _tail(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConsoleError(400, f"tail {text!r}: use a whole number of lines, 1 or more")
    return int(text)


async def _lines(
    request: Request, app: str, start: datetime, follow: bool
) -> AsyncIterator[app_logs.LogLine]:
    f = _filters(request)
    async for line in app_logs.stream(
        context_of(request),
        app,
        start,
        follow,
        f["service"] or None,
        f["filter"] or None,
        request.is_disconnected,
    ):
        yield line


@router.get("/apps/{app}/logs", response_class=HTMLResponse)
async def logs_page(request: Request, app: str) -> HTMLResponse:
    user = need(request, "GET", "/apps/{app}/logs")
    found = apps.get_app(context_of(request), validate_app_name(app))
    f = _filters(request)
    shown: deque[str] = deque(maxlen=_tail(f["tail"]) or PAGE_LINES)
    start = utcnow() - timedelta(seconds=_since(f["since"]))
    total = 0
    async for line in _lines(request, found.name, start, False):
        shown.append(line.line)
        total += 1
    return page(
        request,
        "logs.html",
        user,
        app=found,
        lines=list(shown),
        total=total,
        start=start.timestamp(),
        filters=f,
    )


@router.get("/apps/{app}/logs/stream")
async def logs_stream(request: Request, app: str) -> EventStream:
    """The lines after those the page showed: the page passes the start of its window
    (`start`, so the window does not move on) and how many lines it had (`after`)."""
    need(request, "GET", "/apps/{app}/logs")
    found = apps.get_app(context_of(request), validate_app_name(app))
    try:
        start = datetime.fromtimestamp(float(request.query_params.get("start", "")), UTC)
    except (ValueError, OverflowError, OSError):
        raise ConsoleError(400, "start: a time in seconds since 1970 is needed") from None
    skip = _count(request.query_params.get("after"))

    async def events() -> AsyncIterator[ServerSentEvent]:
        seen = 0
        async for line in _lines(request, found.name, start, True):
            seen += 1
            if seen > skip:
                yield ServerSentEvent(data={"line": line.line}, event="line")

    return EventStream(events())
