"""When a certificate is due, and how long to wait after a failed attempt: the renewal policy,
pure, so that it is tested without an ACME server or a clock."""

from __future__ import annotations

from datetime import datetime, timedelta

# Let's Encrypt's advice (and certbot's default): renew 30 days before expiry, which leaves
# weeks of retries before anything expires.
RENEW_BEFORE = timedelta(days=30)
# After a failure: 1 min, 2, 4, ... up to 6 hours between attempts.
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=6)


def renewal_due(
    not_after: datetime | None, now: datetime, before: timedelta = RENEW_BEFORE
) -> bool:
    """True when there is no certificate yet or it expires within `before`."""
    return not_after is None or not_after - now <= before


def retry_delay(failures: int, first: timedelta = FIRST_RETRY) -> timedelta:
    """The wait before the next attempt after `failures` failures in a row (1, 2, ...)."""
    if failures <= 0:
        return timedelta(0)
    delay: timedelta = first * (2 ** min(failures - 1, 20))
    return min(delay, LONGEST_RETRY)


def status(not_after: datetime, now: datetime, before: timedelta = RENEW_BEFORE) -> str:
    """What `shipmate certs` shows in STATUS: valid, renewing (due), or expired."""
    if not_after <= now:
        return "expired"
    return "renewing" if renewal_due(not_after, now, before) else "valid"
