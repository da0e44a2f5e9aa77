"""The admin client: `RemoteRoutes`, the `Routes` the runtime uses, over the router daemon's
admin socket (admin.py is the other end; lifecycle.py starts and stops the daemon)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from shipmate.router.counters import BackendCounts
from shipmate.router.errors import RouterError

__all__ = ["BackendCounts", "RemoteRoutes", "RouterError"]

# How long a routing change is retried while the router cannot be reached (a router being
# restarted answers again well within this).
RETRY_FOR = 15.0


class RemoteRoutes:
    """The `Routes` the runtime uses when the router runs as a daemon: one kept-alive client
    over the admin socket. Every call is idempotent, so a call that could not reach the router
    (restarting, say) is simply tried again for up to `retry_for` seconds."""

    def __init__(self, socket_path: Path, *, retry_for: float = RETRY_FOR) -> None:
        self.socket_path = socket_path
        self.retry_for = retry_for
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket_path)),
            base_url="http://router",
            timeout=httpx.Timeout(10.0),
        )

    async def _call(
        self, method: str, path: str, body: Any = None, *, timeout: float = 10.0
    ) -> Any:
        deadline = time.monotonic() + self.retry_for
        pause = 0.05
        while True:
            try:
                resp = await self._client.request(method, path, json=body, timeout=timeout)
                break
            except httpx.TransportError as exc:
                if time.monotonic() + pause > deadline:
                    raise RouterError(
                        f"the router does not answer on {self.socket_path} ({exc or type(exc)}); "
                        "`shipmate rack stop` and `rack start` start it again"
                    ) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
        try:
            answer = resp.json()
        except ValueError:
            answer = {}
        if resp.status_code >= 400:
            reason = answer.get("error") if isinstance(answer, dict) else None
            raise RouterError(f"the router refused {method} {path}: {reason or resp.status_code}")
        return answer

    async def declare(self, app: str, service: str) -> None:
        await self._call("POST", f"/routes/{app}/{service}/declare")

    async def set_backends(self, app: str, service: str, backends: list[str]) -> None:
        await self._call("PUT", f"/routes/{app}/{service}", {"backends": backends})

    async def add_backend(self, app: str, service: str, backend: str) -> None:
        await self._call("POST", f"/routes/{app}/{service}/add", {"backend": backend})

    async def remove_backend(self, app: str, service: str, backend: str) -> None:
        await self._call("POST", f"/routes/{app}/{service}/remove", {"backend": backend})

    async def remove_app(self, app: str) -> None:
        await self._call("DELETE", f"/routes/{app}")

    async def backends(self, app: str, service: str) -> list[str]:
        answer = await self._call("GET", "/routes")
        return list(answer["routes"].get(app, {}).get(service, []))

    async def snapshot(self) -> dict[str, dict[str, list[str]]]:
        """Every route: {app: {service: [backend, ...]}}."""
        return dict((await self._call("GET", "/routes"))["routes"])

    async def set_canary(
        self, app: str, service: str, backends: Sequence[str], percent: int
    ) -> None:
        body = {"backends": list(backends), "percent": percent}
        await self._call("PUT", f"/routes/{app}/{service}/canary", body)

    async def end_canary(self, app: str, service: str, keep: bool) -> None:
        flag = "true" if keep else "false"
        await self._call("DELETE", f"/routes/{app}/{service}/canary?keep={flag}")

    async def canaries(self) -> dict[str, dict[str, tuple[list[str], int]]]:
        """Every canary group: {app: {service: ([backend, ...], percent)}}."""
        answer = (await self._call("GET", "/routes")).get("canaries") or {}
        return {
            app: {s: (list(g["backends"]), int(g["percent"])) for s, g in services.items()}
            for app, services in answer.items()
        }

    async def backend_counts(self) -> dict[str, BackendCounts]:
        """Every backend's response counts, added up over the router's processes, cumulative
        since they started (take differences; a restarted router starts from zero)."""
        answer = await self._call("GET", "/counters")
        return {b: BackendCounts.from_json(c) for b, c in answer["counters"].items()}

    async def counters(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
        """`backend_counts` as plain tuples (classes, latency buckets): the `Routes` form."""
        return {b: c.as_tuples() for b, c in (await self.backend_counts()).items()}

    async def wait_drained(self, backend: str, timeout: float) -> bool:
        body = {"backend": backend, "timeout": timeout}
        answer = await self._call("POST", "/drained", body, timeout=max(timeout, 0) + 10.0)
        return bool(answer["drained"])

    # --- custom domains, ACME answers, certificates (sites.py, tls.py) -------------------------

    async def set_sites(
        self, domains: dict[str, tuple[str, str]], redirects: Sequence[tuple[str, str]]
    ) -> None:
        """Every custom domain -> (app, service), and the services that redirect to HTTPS."""
        body = {
            "domains": {name: list(key) for name, key in domains.items()},
            "redirects": [list(key) for key in redirects],
        }
        await self._call("PUT", "/sites", body)

    async def sites(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/sites"))

    async def set_challenge(self, token: str, answer: str | None) -> None:
        """Answer /.well-known/acme-challenge/TOKEN on the HTTP port (None: stop)."""
        if answer is None:
            await self._call("DELETE", f"/challenges/{token}")
        else:
            await self._call("PUT", f"/challenges/{token}", {"answer": answer})

    async def put_cert(self, name: str, cert_pem: str, key_pem: str) -> dict[str, Any]:
        return dict(await self._call("PUT", f"/certs/{name}", {"cert": cert_pem, "key": key_pem}))

    async def remove_cert(self, name: str) -> None:
        await self._call("DELETE", f"/certs/{name}")

    async def certs(self) -> dict[str, Any]:
        """{"https": URL or None, "certs": [{"name", "names", "issuer", "expires"}]}."""
        return dict(await self._call("GET", "/certs"))

    async def aclose(self) -> None:
        await self._client.aclose()
