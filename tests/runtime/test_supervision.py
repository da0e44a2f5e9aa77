"""Restart delays after crashes: doubling, capped, reset after a quiet spell."""

from __future__ import annotations

from shipmate.runtimes.local.supervision import MAX_BACKOFF, QUIET_RESET, CrashBackoff


def test_delays_double_up_to_the_cap_and_reset_after_a_quiet_spell() -> None:
    now = [1000.0]
    backoff = CrashBackoff(clock=lambda: now[0])
    delays = []
    for _ in range(7):
        delays.append(backoff.crashed("app", "web"))
        now[0] += 1
    assert delays == [(1, 1), (2, 2), (4, 3), (8, 4), (16, 5), (MAX_BACKOFF, 6), (MAX_BACKOFF, 7)]
    assert backoff.crashed("app", "worker") == (1, 1)  # per service
    now[0] += QUIET_RESET + 1
    assert backoff.crashed("app", "web") == (1, 1)
