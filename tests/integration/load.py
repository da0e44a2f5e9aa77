"""A bounded load through the router, every request's outcome kept: who answered it, when
it started, and what went wrong if anything did.

Each worker holds one kept-alive connection (as a browser or an API client does) and sends
GETs, small POSTs the router buffers and large POSTs it streams, in turn.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass

import httpx

BODIES = (b"", b"p" * 1000, b"q" * 100_000)  # none, buffered by the router, streamed by it


@dataclass(frozen=True)
class Outcome:
    started: float
    method: str
    release: str | None  # who answered; None when the request failed
    problem: str | None
    status: int | None = None  # None: no answer at all


class Load:
    def __init__(
        self,
        url: str,
        host: str,
        concurrency: int,
        *,
        verify: ssl.SSLContext | bool = True,
        fresh: bool = False,
    ) -> None:
        """`url` may be https: the TLS name (SNI) is then `host`, checked against `verify`.
        With `fresh`, every request opens a connection of its own (a TLS handshake each)."""
        self.url, self.host = url, host
        self.verify, self.fresh = verify, fresh
        self.done = threading.Event()
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._worker, args=(i,), daemon=True)
            for i in range(concurrency)
        ]
        for thread in self.threads:
            thread.start()

    def _worker(self, index: int) -> None:
        # One client per worker: one kept-alive connection each, as a browser or an API
        # client holds it across the rollbacks.
        limits = httpx.Limits(max_keepalive_connections=0) if self.fresh else httpx.Limits()
        extensions = {"sni_hostname": self.host} if self.url.startswith("https:") else {}
        with httpx.Client(
            base_url=self.url,
            headers={"Host": self.host},
            timeout=30,
            verify=self.verify,
            limits=limits,
        ) as client:
            n = index
            while not self.done.is_set():
                n += 1
                body = BODIES[n % len(BODIES)]
                started = time.monotonic()
                method = "POST" if body else "GET"
                try:
                    resp = client.request(method, "/", content=body or None, extensions=extensions)
                    data = resp.json() if resp.status_code in (200, 500) else {}
                    status = resp.status_code
                    if status != 200:
                        problem = f"{status} {resp.text}"
                        outcome = Outcome(started, method, None, problem, status)
                        if status == 500 and "release" in data:  # the app's own 500
                            outcome = Outcome(started, method, data["release"], problem, status)
                    elif body and data.get("received") != len(body):
                        problem = f"sent {len(body)} bytes, the app received {data.get('received')}"
                        outcome = Outcome(started, method, None, problem, status)
                    else:
                        outcome = Outcome(started, method, data["release"], None, status)
                except (httpx.HTTPError, ValueError) as exc:
                    outcome = Outcome(started, method, None, f"{type(exc).__name__}: {exc}")
                with self.lock:
                    self.outcomes.append(outcome)

    def stop(self) -> list[Outcome]:
        self.done.set()
        for thread in self.threads:
            thread.join(60)
        return self.outcomes
