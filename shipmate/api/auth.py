"""Bearer-token authentication of the API."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from fastapi import Request

from shipmate.api.errors import ApiError


def load_or_create_token(path: Path) -> str:
    """The rack's token, generated at first start and readable only by its owner."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def require_token(request: Request) -> None:
    expected: str = request.app.state.token
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "missing token: set SHIPMATE_TOKEN or run the CLI as the rack's user")
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise ApiError(401, "invalid token: check SHIPMATE_TOKEN")
