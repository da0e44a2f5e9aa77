"""Times as users read them: go-humanize relative times and RFC 3339 stamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_WEEK = 7 * _DAY
# go-humanize's calendar: a month is 30 days and a year 12 such months (360 days).
_MONTH = 30 * _DAY
_YEAR = 12 * _MONTH
_LONG_TIME = 37 * _YEAR

# (upper bound, format, divisor) exactly as go-humanize's defaultMagnitudes: the first row
# whose bound is strictly greater than the difference wins; `{n}` is diff // divisor.
_MAGNITUDES: tuple[tuple[timedelta, str, timedelta], ...] = (
    (_SECOND, "now", _SECOND),
    (2 * _SECOND, "1 second {label}", _SECOND),
    (_MINUTE, "{n} seconds {label}", _SECOND),
    (2 * _MINUTE, "1 minute {label}", _SECOND),
    (_HOUR, "{n} minutes {label}", _MINUTE),
    (2 * _HOUR, "1 hour {label}", _SECOND),
    (_DAY, "{n} hours {label}", _HOUR),
    (2 * _DAY, "1 day {label}", _SECOND),
    (_WEEK, "{n} days {label}", _DAY),
    (2 * _WEEK, "1 week {label}", _SECOND),
    (_MONTH, "{n} weeks {label}", _WEEK),
    (2 * _MONTH, "1 month {label}", _SECOND),
    (_YEAR, "{n} months {label}", _MONTH),
    (18 * _MONTH, "1 year {label}", _SECOND),
    (2 * _YEAR, "2 years {label}", _SECOND),
    (_LONG_TIME, "{n} years {label}", _YEAR),
)
_BEYOND = "a long while {label}"


def ago(then: datetime, now: datetime) -> str:
    """How long before `now` `then` was, as go-humanize's `RelTime(then, now, "ago", "from now")`.

    A `then` after `now` (clock skew between hosts) reads "... from now", as in go-humanize.
    """
    diff = now - then
    label = "ago"
    if diff < timedelta(0):
        diff = -diff
        label = "from now"
    for bound, fmt, divisor in _MAGNITUDES:
        if bound > diff:
            return fmt.format(n=diff // divisor, label=label)
    return _BEYOND.format(label=label)


def rfc3339(dt: datetime) -> str:
    """`2026-01-15T14:30:49Z`: UTC, whole seconds. A naive datetime is taken to be UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)
