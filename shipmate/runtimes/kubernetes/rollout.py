"""Watching Deployments roll out, and relaying the namespace's Events meanwhile.

A rollout is complete when the Deployment controller has seen the latest spec
(`observedGeneration >= generation`) and every replica is updated and available, with no old
one left; it fails when its `Progressing` condition says `ProgressDeadlineExceeded`, or when
the promotion's deadline passes first. Events of the app's objects are relayed as they come,
`<involved object name> <message>` (the EventLog adds `system/k8s/`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from shipmate.runtimes.base import EventSink, RolloutFailed
from shipmate.runtimes.kubernetes.cluster import Cluster

POLL = 0.25
# Event reasons that say why pods do not get ready: the failure's reason names the last one.
TROUBLE = ("BackOff", "Unhealthy", "Failed", "FailedScheduling", "ErrImagePull")


class EventRelay:
    """Relays the Events of a namespace that appeared after it was started, once each."""

    def __init__(self, cluster: Cluster, ns: str, emit: EventSink) -> None:
        self.cluster = cluster
        self.ns = ns
        self.emit = emit
        self.seen: set[tuple[str, int]] = set()
        self.trouble: str | None = None

    async def start(self) -> None:
        for event in await self.cluster.events(self.ns):
            self.seen.add(_key(event))

    async def relay(self) -> None:
        events = sorted(await self.cluster.events(self.ns), key=_when)
        for event in events:
            key = _key(event)
            if key in self.seen:
                continue
            self.seen.add(key)
            self.emit(event.involved_object.name, event.message or event.reason or "")
            if event.reason in TROUBLE:
                self.trouble = event.message


def _key(event: Any) -> tuple[str, int]:
    return (event.metadata.name, event.count or 1)


def _when(event: Any) -> Any:
    return event.last_timestamp or event.event_time or event.metadata.creation_timestamp or 0


def complete(deployment: Any) -> bool:
    spec = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    status = deployment.status
    if status is None:
        return False
    generation = deployment.metadata.generation or 0
    if (status.observed_generation or 0) < generation or generation == 0:
        return False
    return (
        (status.updated_replicas or 0) == spec
        and (status.available_replicas or 0) == spec
        and (status.replicas or 0) == spec
    )


def deadline_exceeded(deployment: Any) -> bool:
    status = deployment.status
    for condition in (status.conditions or []) if status else []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            return True
    return False


async def watch(
    cluster: Cluster, ns: str, names: list[str], relay: EventRelay, deadline: float
) -> None:
    """Until every Deployment in `names` has rolled out; RolloutFailed past `deadline`
    seconds, naming the last trouble an Event reported."""
    end = time.monotonic() + deadline
    waiting = list(names)
    while True:
        await relay.relay()
        for name in list(waiting):
            deployment = await cluster.deployment(ns, name)
            if complete(deployment):
                waiting.remove(name)
            elif deadline_exceeded(deployment):
                raise RolloutFailed("deadline", _reason(name, deadline, relay))
        if not waiting:
            await relay.relay()
            return
        if time.monotonic() >= end:
            raise RolloutFailed("deadline", _reason(waiting[0], deadline, relay))
        await asyncio.sleep(POLL)


def _reason(name: str, deadline: float, relay: EventRelay) -> str:
    cause = f" ({relay.trouble})" if relay.trouble else ""
    return f"deadline exceeded: deployment {name} not rolled out within {deadline:g}s{cause}"
