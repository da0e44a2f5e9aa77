"""The watch's arithmetic: counts, percentiles from buckets, and the verdicts."""

from __future__ import annotations

import pytest

from shipmate.common.latency import LATENCY_BOUNDS_MS
from shipmate.domain.errors import ManifestError
from shipmate.domain.manifest import load_manifest
from shipmate.domain.traffic import Counts, Outcome, WatchRule, breach, describe, judge


def answers(ok: int = 0, errors: int = 0, ms: int = 5) -> Counts:
    latency = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    index = next((i for i, b in enumerate(LATENCY_BOUNDS_MS) if ms <= b), len(LATENCY_BOUNDS_MS))
    latency[index] = ok + errors
    return Counts((0, ok, 0, 0, errors), tuple(latency))


def test_counts_add_and_subtract():
    a, b = answers(ok=10), answers(errors=5, ms=300)
    both = a + b
    assert (both.requests, both.errors) == (15, 5)
    assert both - a == b
    # A counter that went backwards (the router restarted): the later reading stands.
    assert a - both == a


def test_p95_is_the_bound_of_the_bucket_that_holds_it():
    assert answers(ok=100, ms=40).p95_ms() == 50
    mixed = answers(ok=94, ms=5) + answers(ok=6, ms=2500)
    assert mixed.p95_ms() == 3000
    assert answers(ok=100, ms=99999).p95_ms() is None
    assert Counts().p95_ms() is None


def test_breach_by_errors_and_by_latency():
    rule = WatchRule(duration=60, errors=5, latency=2000, requests=20)
    assert breach(rule, answers(ok=63, errors=37)) == "5xx 37% > 5%"
    assert breach(rule, answers(ok=96, errors=4)) is None
    assert breach(rule, answers(ok=90, ms=10) + answers(ok=10, ms=2500)) == "p95 3000 ms > 2000 ms"
    assert breach(rule, answers(ok=96, ms=10) + answers(ok=4, ms=2500)) is None
    assert breach(rule, answers(errors=19)) is None  # too few to judge


def test_judge():
    rule = WatchRule(duration=60, errors=5, requests=20)
    bad, good = answers(ok=50, errors=50), answers(ok=100)
    assert judge(rule, bad, good, 10).outcome is Outcome.FAILED
    assert judge(rule, bad, None, 10).reason == "5xx 50% > 5%"
    excused = judge(rule, bad, answers(errors=30), 10)
    assert excused.outcome is Outcome.EXCUSED
    assert "the previous release did as badly (30 requests, 5xx 100%, p95 5 ms)" in excused.reason
    assert judge(rule, good, None, 10).outcome is Outcome.WATCHING
    assert judge(rule, good, None, 60).outcome is Outcome.PASSED
    assert describe(answers(ok=812, errors=1, ms=20)) == "813 requests, 5xx 0.1%, p95 25 ms"
    little = judge(rule, answers(ok=3), None, 61)
    assert little.outcome is Outcome.TOO_LITTLE
    assert little.reason == "3 requests in 60 s, fewer than the 20 needed to judge"


def manifest(watch: str) -> str:
    service = "services:\n  web:\n    command: x\n    port: 3000\n"
    return f"{service}    deployment:\n      watch: {watch}\n"


def test_the_manifest_watch():
    m = load_manifest(manifest("{duration: 120, errors: 5, latency: 2000}"), "shipmate.yml")
    assert m.watch() == WatchRule(duration=120, errors=5.0, latency=2000, requests=20)
    assert load_manifest("services:\n  web:\n    command: x\n", "shipmate.yml").watch() is None


@pytest.mark.parametrize(
    ("watch", "message"),
    [
        ("{duration: 10}", "give `errors`"),
        ("{errors: 120}", "expected a % from 0 to 100"),
        ("{errors: many}", "expected a number"),
        ("{errors: 5, latency: 0}", "expected an integer >= 1"),
        ("{errors: 5, window: 3}", "window"),
    ],
)
def test_a_bad_watch_is_refused(watch: str, message: str):
    with pytest.raises(ManifestError, match=message):
        load_manifest(manifest(watch), "shipmate.yml")
