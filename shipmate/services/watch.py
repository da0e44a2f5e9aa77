"""Watched promotions: judge a new release by what the router saw it answer.

After a promotion succeeds (or while a canary serves its share), the rack reads the router's
counts of the app's processes every `TICK` seconds, sums the new release's answers since the
watch began, and judges them against the manifest's `deployment.watch`
(shipmate.domain.traffic). A breach calls `on_breach` (an automatic rollback, or the canary's
abort); the verdict is an event of the watched promotion either way, and `apps watch` reads
the watch as it goes.

The previous release is judged over its own window so that a release is not rolled back
for a fault the one before it had too: during a canary both serve at once and share the
window; after a full rollout the previous release's window is what it answered before the
promotion (`baseline`), since it serves nothing during the watch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from shipmate.domain.humanize import utcnow
from shipmate.domain.traffic import Counts, Outcome, Verdict, WatchRule, judge, total
from shipmate.runtimes.base import Traffic
from shipmate.services.context import Context

TICK = 0.5
PROGRESS_EVERY = 10.0  # seconds between the watch's progress events
OBJECT = "router/watch"


@dataclass
class Watch:
    """One watch in progress (or just over): what `apps watch` shows."""

    app: str
    release_id: str
    previous_id: str | None
    promotion_id: str
    rule: WatchRule
    canary: bool = False
    started_at: datetime = field(default_factory=utcnow)
    started: float = field(default_factory=time.monotonic)
    new: Counts = field(default_factory=Counts)
    previous: Counts | None = None
    verdict: Verdict = field(default_factory=lambda: Verdict(Outcome.WATCHING, "no answer yet"))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def release_counts(traffic: list[Traffic], release_id: str | None) -> Counts | None:
    """Everything the release's running processes answered so far; None for no release."""
    if release_id is None:
        return None
    return total(t.counts for t in traffic if t.release_id == release_id)


class Window:
    """A release's answers since the window opened, per process: a process first seen later
    counts from then; one that exits keeps what it answered."""

    def __init__(self, release_id: str | None) -> None:
        self.release_id = release_id
        self._base: dict[str, Counts] = {}
        self._seen: dict[str, Counts] = {}

    def update(self, traffic: list[Traffic]) -> Counts:
        for t in traffic:
            if t.release_id != self.release_id:
                continue
            base = self._base.setdefault(t.process_id, t.counts)
            self._seen[t.process_id] = t.counts - base
        return total(self._seen.values())


async def run_watch(
    ctx: Context,
    watch: Watch,
    on_breach: Callable[[str], Awaitable[None]],
) -> Verdict:
    """Watch until the rule's duration passes or a breach; the verdict, announced."""
    ctx.watches[watch.app] = watch

    def emit(message: str) -> None:
        ctx.events.emit(watch.app, OBJECT, message, watch.promotion_id)

    rule = watch.rule
    bounds = [f"5xx > {rule.errors:g}%" if rule.errors is not None else ""]
    bounds.append(f"p95 > {rule.latency} ms" if rule.latency is not None else "")
    emit(
        f"Watching {watch.release_id} for {rule.duration} s: rolled back on "
        f"{' or '.join(b for b in bounds if b)} (from {rule.requests} requests)"
        if not watch.canary
        else f"Watching canary {watch.release_id} for {rule.duration} s: aborted on "
        f"{' or '.join(b for b in bounds if b)} (from {rule.requests} requests)"
    )
    new_window = Window(watch.release_id)
    old_window = Window(watch.previous_id) if watch.canary else None
    next_progress = PROGRESS_EVERY
    try:
        while True:
            traffic = await ctx.runtime.traffic(watch.app)
            watch.new = new_window.update(traffic)
            if old_window is not None:
                watch.previous = old_window.update(traffic)
            verdict = judge(rule, watch.new, watch.previous, watch.elapsed)
            watch.verdict = verdict
            if verdict.over:
                break
            if watch.elapsed >= next_progress:
                emit(f"Watch: {watch.elapsed:.0f} s of {rule.duration} s: {verdict.reason}")
                next_progress += PROGRESS_EVERY
            await asyncio.sleep(TICK)
    except asyncio.CancelledError:
        why = "the canary was decided" if watch.canary else "a new promotion began"
        watch.verdict = Verdict(Outcome.STOPPED, f"{why} after {watch.elapsed:.0f} s")
        emit(f"Watch stopped: {watch.verdict.reason}")
        raise
    finally:
        if ctx.watches.get(watch.app) is watch and not watch.verdict.over:
            del ctx.watches[watch.app]
    seconds = f"in {watch.elapsed:.0f} s"
    if verdict.outcome is Outcome.FAILED:
        emit(f"Watch failed: {verdict.reason} {seconds}")
        await on_breach(f"{verdict.reason} {seconds}")
    elif verdict.outcome is Outcome.EXCUSED:
        emit(f"Watch: {verdict.reason}: not rolling back")
    elif verdict.outcome is Outcome.TOO_LITTLE:
        emit(f"Watch ended: too little traffic to judge ({verdict.reason})")
    else:
        emit(f"Watch passed: {verdict.reason} {seconds}")
    return verdict


def stop_watch(ctx: Context, app: str) -> None:
    """A new promotion of the app ends the watch of the one before it."""
    watch = ctx.watches.get(app)
    if watch is not None and not watch.verdict.over:
        task = ctx.watch_tasks.pop(app, None)
        if task is not None:
            task.cancel()


def current(ctx: Context, app: str) -> Watch | None:
    return ctx.watches.get(app)
