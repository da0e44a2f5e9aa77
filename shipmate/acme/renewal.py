"""Keep a certificate for every domain: obtain what is missing, renew what is due (30 days
before expiry), retry failures with backoff, and report each step as an event
(`router/cert/example.com Issued, expires 2027-03-01`).

It talks to the router through its admin client (challenge answers, certificates) and to the
ACME server through an `Issuer` (issue.py), which is blocking and runs on a thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from shipmate.acme.issue import Issued, Issuer
from shipmate.domain.certs import renewal_due, retry_delay

log = logging.getLogger("shipmate.acme")

Event = Callable[[str, str], None]  # (object, message): system/router/<object> <message>


class CertRouter(Protocol):
    async def set_challenge(self, token: str, answer: str | None) -> None: ...
    async def put_cert(self, name: str, cert_pem: str, key_pem: str) -> dict[str, Any]: ...
    async def certs(self) -> dict[str, Any]: ...


def _expiry(answer: dict[str, Any]) -> dict[str, datetime]:
    found: dict[str, datetime] = {}
    for cert in answer.get("certs") or []:
        found[cert["name"]] = datetime.fromisoformat(cert["expires"].replace("Z", "+00:00"))
    return found


class Renewer:
    def __init__(
        self,
        issuer: Issuer,
        router: CertRouter,
        event: Event,
        *,
        saved: Callable[[str, Issued], Awaitable[None]] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.issuer = issuer
        self.router = router
        self.event = event
        # Called with each new certificate before the router gets it (the rack stores it).
        self.saved = saved
        self.now = now
        self.failures: dict[str, int] = {}
        self.next_try: dict[str, datetime] = {}

    async def check(self, domains: Iterable[str], *, force: bool = False) -> None:
        """One pass: every domain whose certificate is missing or due (all with `force`),
        unless it failed recently and its backoff has not run out."""
        expiry = _expiry(await self.router.certs())
        now = self.now()
        for domain in sorted(set(domains)):
            if domain.startswith("*."):
                continue  # HTTP-01 cannot prove a wildcard: `shipmate certs import` one
            if not force and not renewal_due(expiry.get(domain), now):
                continue
            if not force and self.next_try.get(domain, now) > now:
                continue
            await self.obtain(domain, renewing=domain in expiry)

    async def obtain(self, domain: str, *, renewing: bool) -> bool:
        obj = f"router/cert/{domain}"
        self.event(obj, "Renewing" if renewing else "Requesting certificate")
        loop = asyncio.get_running_loop()

        def publish(token: str, answer: str | None) -> None:
            # From the issuer's thread, onto the loop that owns the admin client.
            future = asyncio.run_coroutine_threadsafe(
                self.router.set_challenge(token, answer), loop
            )
            future.result(30)

        try:
            issued = await asyncio.to_thread(self.issuer.issue, [domain], publish)
            if self.saved is not None:
                await self.saved(domain, issued)
            info = await self.router.put_cert(domain, issued.cert_pem, issued.key_pem)
        except Exception as exc:  # AcmeError, or the router's refusal: retried later
            failures = self.failures.get(domain, 0) + 1
            self.failures[domain] = failures
            wait = retry_delay(failures)
            self.next_try[domain] = self.now() + wait
            self.event(obj, f"Failed: {exc}; retrying in {int(wait.total_seconds())}s")
            log.warning("acme: %s: %s", domain, exc)
            return False
        self.failures.pop(domain, None)
        self.next_try.pop(domain, None)
        self.event(obj, f"Issued, expires {info['expires'][:10]}")
        return True

    async def run(
        self, domains: Callable[[], Awaitable[Iterable[str]]], interval: float = 60.0
    ) -> None:
        """Check every `interval` seconds for as long as the rack runs."""
        while True:
            try:
                await self.check(await domains())
            except Exception as exc:
                log.warning("acme: renewal check failed: %s", exc)
            await asyncio.sleep(interval)
