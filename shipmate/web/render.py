"""Templates, and the console's answers to refusals and errors: pages, not JSON."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from shipmate.api.errors import response_of
from shipmate.domain.errors import ShipmateError
from shipmate.domain.humanize import rfc3339
from shipmate.web.access import ConsoleError, LoginNeeded, User, user_of

HERE = Path(__file__).parent
PREFIX = "/console"

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["time"] = lambda t: rfc3339(t) if t is not None else ""


def page(
    request: Request, name: str, user: User | None, status: int = 200, **values: Any
) -> HTMLResponse:
    html = templates.get_template(name).render(
        prefix=PREFIX,
        user=user,
        csrf=user.session.csrf if user else "",
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


# No framing (clickjacking a Rollback button), no cross-origin leaks, and scripts only from
# the rack itself.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class ConsoleRoute(APIRoute):
    """A console route: a refusal or a use case's error becomes a page with its one line."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginNeeded:
                return RedirectResponse(f"{PREFIX}/login", status_code=303)
            except ConsoleError as exc:
                return page(request, "error.html", user_of(request), exc.status, error=exc.message)
            except ShipmateError as exc:
                return page(
                    request,
                    "error.html",
                    user_of(request),
                    response_of(exc).status_code,
                    error=str(exc),
                )

        return handle
