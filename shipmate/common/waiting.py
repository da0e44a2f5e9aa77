"""Waiting for a condition: one deadline loop for the code and the tests alike."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The condition did not hold in time; the message says what was awaited."""


def poll_until(
    check: Callable[[], T | None],
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Call `check` until it returns something truthy, and return that; WaitTimeout after
    `timeout` seconds. The check always runs once more at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(interval, remaining))


async def wait_for(
    check: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """The asyncio form of poll_until; `check` may be a plain or a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        result = await outcome if isinstance(outcome, Awaitable) else outcome
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(min(interval, remaining))
