"""Console sessions: a random id in an httpOnly cookie, the rest in the rack's memory.

The cookie never holds the token: a stolen cookie dies with the rack process or at logout,
and the token's secret is never kept at all, only its name (names are never reused), so
every request re-reads the token and a revocation or a role change applies at once. A rack
restart therefore logs every console user out.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

COOKIE = "shipmate_console"
# Idle sessions expire: a browser left logged in on a shared machine does not stay so.
IDLE_SECONDS = 12 * 3600


@dataclass
class Session:
    id: str
    token_name: str
    csrf: str
    last_seen: float

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(self.csrf.encode(), given.encode())


class Sessions:
    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def open(self, token_name: str) -> Session:
        self._prune()
        session = Session(
            id=secrets.token_urlsafe(32),
            token_name=token_name,
            csrf=secrets.token_urlsafe(32),
            last_seen=time.monotonic(),
        )
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > IDLE_SECONDS:
            self.close(session_id)
            return None
        session.last_seen = now
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)

    def _prune(self) -> None:
        # At each login: sessions nobody came back to do not pile up in the rack's memory.
        cutoff = time.monotonic() - IDLE_SECONDS
        for stale in [s.id for s in self._by_id.values() if s.last_seen < cutoff]:
            del self._by_id[stale]
