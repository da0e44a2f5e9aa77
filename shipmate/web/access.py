"""Who is using the console, and whether the API would let them do what a page does.

A page or action names the API route it corresponds to (method and template), and the API's
own rule (`api.auth.required_role`) decides: the console can never allow what the API
refuses, and a new button is covered the day its route is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import Request

from shipmate.api.auth import current_role, required_role
from shipmate.domain.actor import current_actor
from shipmate.services import tokens
from shipmate.services.context import Context
from shipmate.web.sessions import COOKIE, Session, Sessions

log = logging.getLogger("shipmate.web")


class ConsoleError(Exception):
    """A refusal shown as a page: `status` and one line saying what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoginNeeded(Exception):
    """A page read without a session: the browser is sent to the login form."""


@dataclass(frozen=True)
class User:
    session: Session
    name: str
    role: str

    def may(self, method: str, template: str) -> bool:
        return tokens.rank(self.role) >= tokens.rank(required_role(method, template))


def sessions_of(request: Request) -> Sessions:
    found: Sessions = request.app.state.console_sessions
    return found


def context_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def login(request: Request, secret: str) -> Session:
    token = tokens.authenticate(context_of(request), secret.strip()) if secret.strip() else None
    if token is None or token.revoked_at is not None:
        # As the API logs its refusals: the rack log shows who keeps trying.
        name = f"revoked token {token.name}" if token else "unknown token"
        client = request.client.host if request.client else "unknown"
        log.warning("refused: console login with %s from %s", name, client)
    if token is None:
        raise ConsoleError(401, "invalid token: paste a token from `shipmate rack tokens create`")
    if token.revoked_at is not None:
        raise ConsoleError(401, f"token {token.name} was revoked: ask an admin for a new one")
    return sessions_of(request).open(token.name)


def user_of(request: Request) -> User | None:
    """The session's user, None without a live session or once its token is revoked."""
    sessions = sessions_of(request)
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return None
    token = tokens.find(context_of(request), session.token_name)
    if token is None or token.revoked_at is not None:
        sessions.close(session.id)
        return None
    return User(session, token.name, token.role)


def need(request: Request, method: str, template: str) -> User:
    """The user, allowed to do what `method` on the API route `template` does; the actor of
    whatever the use cases record from here on (audit, created_by), as the API sets it."""
    user = user_of(request)
    if user is None:
        if method in ("GET", "HEAD"):
            raise LoginNeeded()
        raise ConsoleError(401, "not logged in: log in to the console again, then retry")
    if not user.may(method, template):
        wanted = required_role(method, template)
        raise ConsoleError(
            403, f"forbidden: token {user.name} has role {user.role}, this needs {wanted}"
        )
    current_actor.set(user.name)
    current_role.set(user.role)
    return user


async def need_change(request: Request, method: str, template: str) -> tuple[User, dict[str, str]]:
    """need() for a form that changes something, with its fields, once its CSRF token (the
    session's own) is checked: a forged form changes nothing."""
    user = need(request, method, template)
    form = await form_of(request)
    if not user.session.csrf_ok(form.get("csrf")):
        raise ConsoleError(403, "invalid or missing form token: reload the page and try again")
    return user, form


async def form_of(request: Request) -> dict[str, str]:
    # url-encoded forms only: the console sends nothing else, and no multipart parser is
    # needed for it.
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
