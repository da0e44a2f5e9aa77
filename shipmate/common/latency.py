"""The router's latency histogram: one set of bucket bounds for the router that counts and
the rack that judges (a p95 is read from the buckets, so both must agree on them)."""

from __future__ import annotations

# Upper bounds in milliseconds; one more bucket counts everything slower.
LATENCY_BOUNDS_MS: tuple[int, ...] = (
    5,
    10,
    25,
    50,
    100,
    200,
    300,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    5000,
    10000,
)
