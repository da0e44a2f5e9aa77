"""The console's forms that change something: log in and out, roll back, promote, stop a
process; and the promotion page they lead to. Every change checks the session's CSRF token
and the role of the API route it corresponds to before it calls the use case."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from shipmate.api.deps import refuse_while_stopping
from shipmate.api.schemas import EventOut
from shipmate.domain.ids import validate_app_name
from shipmate.services import apps, history, processes, releases
from shipmate.structs import Event
from shipmate.web.access import (
    ConsoleError,
    context_of,
    form_of,
    login,
    need,
    need_change,
    sessions_of,
)
from shipmate.web.render import PREFIX, ConsoleRoute, page
from shipmate.web.sessions import COOKIE
from shipmate.web.timeline import final_line, intro

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

ROLLBACK = "/apps/{app}/releases/{release_id}/rollback"
PROMOTE = "/apps/{app}/releases/{release_id}/promote"
STOP = "/apps/{app}/processes/{process_id}"
VERBS = {"rollback": ROLLBACK, "promote": PROMOTE}


@router.post("/login")
async def login_submit(request: Request) -> Response:
    form = await form_of(request)
    session = login(request, form.get("token", ""))
    response = RedirectResponse(f"{PREFIX}/", status_code=303)
    response.set_cookie(
        COOKIE,
        session.id,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=PREFIX,
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    # The CSRF token too: a forged logout is a nuisance, not a harm, but costs nothing to stop.
    user, _ = await need_change(request, "GET", "/apps")
    sessions_of(request).close(user.session.id)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@router.get("/apps/{app}/releases/{release_id}/{verb}", response_class=HTMLResponse)
async def confirm(request: Request, app: str, release_id: str, verb: str) -> HTMLResponse:
    """What the move would change, and the button that makes it."""
    user = need(request, "POST", _template(verb))
    ctx = context_of(request)
    found = apps.get_app(ctx, validate_app_name(app))
    target, _ = releases.get_release(ctx, found.name, release_id)
    diff = (
        history.diff(ctx, found.name, found.release_id, target.id, reveal=False)
        if found.release_id
        else None
    )
    return page(request, "confirm.html", user, app=found, target=target, verb=verb, diff=diff)


@router.post("/apps/{app}/releases/{release_id}/{verb}")
async def start(request: Request, app: str, release_id: str, verb: str) -> Response:
    await need_change(request, "POST", _template(verb))
    ctx = context_of(request)
    name = validate_app_name(app)
    refuse_while_stopping(request, "promotion")
    if verb == "rollback":
        started = releases.rollback(ctx, name, release_id, None)
    else:
        started = releases.promote(ctx, name, release_id, None)
    where = f"{PREFIX}/apps/{name}/promotions/{started.promotion.id}"
    return RedirectResponse(where, status_code=303)


@router.get("/apps/{app}/promotions/{promotion_id}", response_class=HTMLResponse)
async def promotion_page(request: Request, app: str, promotion_id: str) -> HTMLResponse:
    """The events so far (and the last line once it ended); the page's script follows the
    rest live, and without JavaScript a reload does."""
    user = need(request, "GET", "/apps/{app}/promotions/{promotion_id}/events")
    ctx = context_of(request)
    found = apps.get_app(ctx, validate_app_name(app))
    promotion = releases.get_promotion(ctx, found.name, promotion_id)
    release, _ = releases.get_release(ctx, found.name, promotion.release_id)
    events = [
        item
        async for item in releases.follow_promotion(ctx, found.name, promotion.id, _gone)
        if isinstance(item, Event)
    ]
    return page(
        request,
        "promotion.html",
        user,
        app=found,
        promotion=promotion,
        release=release,
        intro=intro(promotion, release),
        lines=[EventOut.of(e).line for e in events],
        last_event=events[-1].id if events else 0,
        final=final_line(promotion),
    )


@router.post("/apps/{app}/processes/{process_id}/stop")
async def stop(request: Request, app: str, process_id: str) -> Response:
    await need_change(request, "DELETE", STOP)
    name = validate_app_name(app)
    await processes.stop_process(context_of(request), name, process_id)
    return RedirectResponse(f"{PREFIX}/apps/{name}/processes", status_code=303)


def _template(verb: str) -> str:
    if verb not in VERBS:
        raise ConsoleError(404, f"no console page {verb!r}: use rollback or promote")
    return VERBS[verb]


async def _gone() -> bool:
    # The promotion page reads what is there and does not wait: its reader "has gone".
    return True
