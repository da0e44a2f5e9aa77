"""Readiness of a new process: the first passing check makes it healthy."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx

from shipmate.domain.humanize import utcnow
from shipmate.runtimes.base import EventSink, HealthCheck
from shipmate.runtimes.local.process import HOST, LocalProcess

# Readiness is polled faster than the manifest's interval: the interval paces reports of
# failures, while the first success is what a user waits for during a rollback.
READINESS_POLL = 0.05
# Until the process listens, whether its port accepts a connection is asked this often: a
# tenth of the cost of a health check, so the check runs within ~5 ms of the app listening
# rather than ~25 ms later on average (bench/rollback.py).
LISTEN_POLL = 0.005


class ProcessExited(Exception):
    def __init__(self, process: LocalProcess) -> None:
        super().__init__(f"process {process.id} exited with code {process.exit_code}")
        self.process = process


async def _listening(port: int, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(HOST, port)
    except TimeoutError:
        return True  # the health check will tell
    except OSError:
        return False
    writer.close()
    return True


async def _probe(client: httpx.AsyncClient, url: str, timeout: float) -> str | None:
    """None when healthy, else why not."""
    try:
        response = await client.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    if 200 <= response.status_code < 400:
        return None
    return f"HTTP {response.status_code}"


async def wait_healthy(
    process: LocalProcess, check: HealthCheck, client: httpx.AsyncClient, emit: EventSink
) -> None:
    """Return once `process` passes its check; raise ProcessExited if it dies first.

    The caller bounds the wait with the promotion's deadline.
    """
    started = time.monotonic()
    if process.port is None:
        # No port: healthy means still running once the grace period is over.
        try:
            await asyncio.wait_for(process.exited.wait(), timeout=check.grace)
        except TimeoutError:
            process.healthy_at = utcnow()
            return
        raise ProcessExited(process)
    url = f"http://{process.backend}{check.path}"
    last_report = 0.0
    while True:
        if not process.alive:
            raise ProcessExited(process)
        pause = READINESS_POLL
        problem: str | None
        if not await _listening(process.port, check.timeout):
            problem, pause = "ConnectError", LISTEN_POLL  # what httpx calls a refused connection
        else:
            problem = await _probe(client, url, check.timeout)
        if problem is None:
            process.health_problem = None
            process.healthy_at = utcnow()
            return
        process.health_problem = f"GET {check.path}: {problem}"
        now = time.monotonic()
        if now - started >= check.grace and now - last_report >= check.interval:
            emit(process.id, f"Unhealthy: GET {check.path}: {problem}")
            last_report = now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.exited.wait(), timeout=pause)
