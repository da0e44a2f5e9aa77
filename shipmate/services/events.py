"""Platform events: written to the store first, then announced to whoever is streaming."""

from __future__ import annotations

import asyncio
import contextlib

from shipmate.services.ports import StorePort
from shipmate.structs import Event


class Notifier:
    """Wakes streamers when something they may be following changed.

    Streams re-read the store after every wake-up, so a missed or spurious wake-up only
    costs a poll interval, never an event.
    """

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)

    async def wait(self, timeout: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiters.discard(waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventLog:
    def __init__(self, store: StorePort, runtime: str, notifier: Notifier) -> None:
        self.store = store
        self.runtime = runtime
        self.notifier = notifier

    def emit(self, app: str, obj: str, message: str, promotion_id: str | None = None) -> Event:
        with self.store.unit_of_work() as uow:
            event = uow.events.add(app, self.runtime, obj, message, promotion_id)
        self.notifier.notify()
        return event
