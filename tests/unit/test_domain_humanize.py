from datetime import UTC, datetime, timedelta, timezone

import pytest

from shipmate.domain.humanize import ago, rfc3339, utcnow

NOW = datetime(2026, 1, 15, 14, 30, 49, tzinfo=UTC)
DAY = timedelta(days=1)
MONTH = 30 * DAY
YEAR = 12 * MONTH


@pytest.mark.parametrize(
    ("elapsed", "text"),
    [
        (timedelta(0), "now"),
        (timedelta(milliseconds=999), "now"),
        (timedelta(seconds=1), "1 second ago"),
        (timedelta(seconds=1.999), "1 second ago"),
        (timedelta(seconds=2), "2 seconds ago"),
        (timedelta(seconds=12), "12 seconds ago"),
        (timedelta(seconds=59.9), "59 seconds ago"),
        (timedelta(seconds=60), "1 minute ago"),
        (timedelta(seconds=119), "1 minute ago"),
        (timedelta(seconds=120), "2 minutes ago"),
        (timedelta(minutes=5, seconds=30), "5 minutes ago"),
        (timedelta(minutes=59, seconds=59), "59 minutes ago"),
        (timedelta(hours=1), "1 hour ago"),
        (timedelta(hours=1, minutes=59), "1 hour ago"),
        (timedelta(hours=2), "2 hours ago"),
        (timedelta(hours=3, minutes=10), "3 hours ago"),
        (timedelta(hours=23, minutes=59), "23 hours ago"),
        (DAY, "1 day ago"),
        (2 * DAY - timedelta(seconds=1), "1 day ago"),
        (2 * DAY, "2 days ago"),
        (6 * DAY, "6 days ago"),
        (7 * DAY, "1 week ago"),
        (13 * DAY, "1 week ago"),
        (14 * DAY, "2 weeks ago"),
        (29 * DAY, "4 weeks ago"),
        (30 * DAY, "1 month ago"),
        (59 * DAY, "1 month ago"),
        (60 * DAY, "2 months ago"),
        (11 * MONTH, "11 months ago"),
        (YEAR - timedelta(seconds=1), "11 months ago"),
        (YEAR, "1 year ago"),
        (18 * MONTH - timedelta(seconds=1), "1 year ago"),
        (18 * MONTH, "2 years ago"),
        (2 * YEAR, "2 years ago"),
        (3 * YEAR, "3 years ago"),
        (37 * YEAR - timedelta(seconds=1), "36 years ago"),
        (37 * YEAR, "a long while ago"),
    ],
)
def test_ago_matches_go_humanize(elapsed, text):
    assert ago(NOW - elapsed, NOW) == text


@pytest.mark.parametrize(
    ("ahead", "text"),
    [
        (timedelta(milliseconds=500), "now"),
        (timedelta(seconds=5), "5 seconds from now"),
        (timedelta(hours=3), "3 hours from now"),
    ],
)
def test_ago_of_a_future_time_reads_from_now(ahead, text):
    assert ago(NOW + ahead, NOW) == text


def test_ago_compares_instants_across_zones():
    then = datetime(2026, 1, 15, 15, 25, 49, tzinfo=timezone(timedelta(hours=1)))
    assert ago(then, NOW) == "5 minutes ago"


def test_rfc3339_is_utc_seconds_with_z():
    assert rfc3339(datetime(2026, 1, 15, 14, 30, 49, 987654, tzinfo=UTC)) == (
        "2026-01-15T14:30:49Z"
    )


def test_rfc3339_converts_to_utc():
    local = datetime(2026, 1, 15, 9, 30, 49, tzinfo=timezone(timedelta(hours=-5)))
    assert rfc3339(local) == "2026-01-15T14:30:49Z"


def test_rfc3339_takes_naive_times_as_utc():
    assert rfc3339(datetime(2026, 1, 15, 14, 30, 49)) == "2026-01-15T14:30:49Z"


def test_utcnow_is_aware_utc():
    now = utcnow()
    assert now.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - now) < timedelta(seconds=5)
