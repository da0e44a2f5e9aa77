"""What every use case needs, wired once by shipmate.bootstrap.build_context."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from shipmate.config import Settings
from shipmate.runtimes.base import Runtime
from shipmate.services.events import EventLog, Notifier
from shipmate.services.ports import StorePort


@dataclass
class Context:
    settings: Settings
    store: StorePort
    runtime: Runtime
    notifier: Notifier
    events: EventLog
    router_url: str = ""
    router_https_url: str | None = None
    # The router's sites and certificates (services.domains.SitesPort; None: not wired), and
    # what services.domains.sync last sent it.
    sites: Any = None
    sites_sent: Any = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    promotions: dict[str, asyncio.Task[Any]] = field(default_factory=dict)  # running, by id
    # Watched promotions by app (services.watch), and their tasks.
    watches: dict[str, Any] = field(default_factory=dict)
    watch_tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    # A canary's promotion waits on its future for `continue` or the reason of an abort.
    canary_decisions: dict[str, asyncio.Future[str | None]] = field(default_factory=dict)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run background work the rack keeps a reference to (so it is not collected)."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task
