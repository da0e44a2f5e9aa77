"""Restart with backoff: how long a crashed process waits before its replacement starts."""

from __future__ import annotations

import time
from collections.abc import Callable

# 1 s, 2 s, 4 s, ... up to this after consecutive crashes of one service.
MAX_BACKOFF = 30.0
# A service that has not crashed for this long starts again from 1 s.
QUIET_RESET = 60.0


class CrashBackoff:
    """Crashes in a row per (app, service), and the delay before the next restart."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._crashes: dict[tuple[str, str], tuple[int, float]] = {}

    def crashed(self, app: str, service: str) -> tuple[float, int]:
        """Record a crash; (seconds to wait before restarting, crashes in a row)."""
        key = (app, service)
        attempts, last = self._crashes.get(key, (0, 0.0))
        now = self._clock()
        if now - last > QUIET_RESET:
            attempts = 0
        self._crashes[key] = (attempts + 1, now)
        return min(MAX_BACKOFF, 2.0**attempts), attempts + 1
