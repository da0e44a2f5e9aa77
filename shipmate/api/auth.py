"""Bearer-token authentication and role checks of the API.

Roles are decided by one rule over the route's method and path template, so a new route is
covered the day it is added: reads (GET/HEAD) need `viewer` (except a build's export, the
app's code: `deployer`), every other method `deployer`, and creating or deleting apps and
everything under /rack/ (tokens, key rotation) `admin`.
The token is looked up in the store on every request, so a revocation applies at once.
"""

from __future__ import annotations

import logging
import os
import secrets
from contextvars import ContextVar
from pathlib import Path

from fastapi import Request
from starlette.requests import HTTPConnection

from shipmate.api.errors import ApiError
from shipmate.domain.actor import current_actor
from shipmate.services import tokens
from shipmate.services.context import Context

log = logging.getLogger("shipmate.api.auth")

READ_METHODS = frozenset({"GET", "HEAD"})
# Certificates are the rack's, not an app's: importing one is the rack owner's business.
ADMIN_ROUTES = frozenset({("POST", "/apps"), ("DELETE", "/apps/{app}"), ("POST", "/certs")})
ADMIN_PREFIX = "/rack/"
# Reads that hand out an app's code, not its state: for those who may deploy it.
DEPLOYER_READS = frozenset({("GET", "/apps/{app}/builds/{build_id}/export")})
MASK = "****"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="shipmate"'}  # RFC 6750

# The role of the token behind the current request; None outside a request.
current_role: ContextVar[str | None] = ContextVar("shipmate_role", default=None)


def load_or_create_token(path: Path) -> str:
    """The rack owner's token, generated at first start and readable only by its owner."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def required_role(method: str, path: str) -> str:
    """The least role that may call `method` on the route whose template is `path`."""
    if path.startswith(ADMIN_PREFIX) or (method, path) in ADMIN_ROUTES:
        return "admin"
    if method in READ_METHODS and (method, path) not in DEPLOYER_READS:
        return "viewer"
    return "deployer"


async def require_token(request: Request) -> None:
    """401 without a valid, unrevoked token; 403 when its role is too low for the route.

    Async on purpose: it then runs in the request's own task, so the actor it sets is seen by
    the route and by any background task the route starts.
    """
    route = request.scope.get("route")
    await authorize(request, request.method, getattr(route, "path", request.url.path))


async def authorize(conn: HTTPConnection, method: str, template: str) -> None:
    """require_token's check, for a request or a WebSocket (whose `method` is what it does:
    an interactive run is a POST of /apps/{app}/run)."""
    header = conn.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise ApiError(
            401,
            "missing token: set SHIPMATE_TOKEN or run the CLI as the rack's user",
            CHALLENGE,
        )
    ctx: Context = conn.app.state.ctx
    token = tokens.authenticate(ctx, given)
    where = f"{method} {conn.url.path} from {_client(conn)}"
    if token is None:
        log.warning("refused: unknown token: %s", where)
        raise ApiError(401, "invalid token: check SHIPMATE_TOKEN", CHALLENGE)
    if token.revoked_at is not None:
        log.warning("refused: revoked token %s: %s", token.name, where)
        raise ApiError(
            401, f"token {token.name} was revoked: ask an admin for a new one", CHALLENGE
        )
    needed = required_role(method, template)
    if tokens.rank(token.role) < tokens.rank(needed):
        log.warning("refused: token %s (%s) needs %s: %s", token.name, token.role, needed, where)
        raise ApiError(
            403, f"forbidden: token {token.name} has role {token.role}, this needs {needed}"
        )
    current_actor.set(token.name)
    current_role.set(token.role)


def visible_env(env: dict[str, str]) -> dict[str, str]:
    """The environment as the current request may see it: values masked for viewers."""
    if current_role.get() == "viewer":
        return dict.fromkeys(env, MASK)
    return env


def _client(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"
