"""Certificates from a real ACME server: Pebble validates HTTP-01 by fetching the challenge
from the router daemon's HTTP port; the certificate it issues is served over HTTPS; a forced
renewal swaps it under HTTPS load (kept-alive and new connections) with no failed request."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipmate.acme.issue import Issuer
from shipmate.acme.renewal import Renewer
from shipmate.router import lifecycle
from shipmate.router.home import Paths
from shipmate.router.remote import RemoteRoutes
from tests import pebble
from tests.integration.load import Load
from tests.router.test_daemon import call

DOMAIN = "shop.example.test"


class _App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        received = len(self.rfile.read(size))
        body = json.dumps({"release": "R1", "received": received}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture
def app() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def served(paths: Paths, app: str, tmp_path: Path) -> Iterator[tuple[str, pebble.Pebble]]:
    info = lifecycle.start(paths, "127.0.0.1:0", listen_https="127.0.0.1:0")
    call(paths, "set_backends", "shop", "web", [app])
    call(paths, "set_sites", {DOMAIN: ("shop", "web")}, [("shop", "web")])
    port = int(info.url.rsplit(":", 1)[1])
    server = pebble.start(tmp_path / "pebble", port)
    yield str(call(paths, "certs")["https"]), server  # type: ignore[index]
    server.stop()


def _roots(server: pebble.Pebble) -> ssl.SSLContext:
    """Trust Pebble's issuing root (its management API hands it out)."""
    management = json.loads((server.ca_bundle.parent / "pebble.json").read_text())
    address = management["pebble"]["managementListenAddress"]
    root = httpx.get(f"https://{address}/roots/0", verify=str(server.ca_bundle), timeout=10)
    return ssl.create_default_context(cadata=root.text)


def _serial(url: str, trust: ssl.SSLContext) -> int:
    from cryptography import x509

    with httpx.Client(verify=trust, timeout=10) as client:
        resp = client.get(url, headers={"Host": DOMAIN}, extensions={"sni_hostname": DOMAIN})
        assert resp.status_code == 200, resp.text
        der = resp.extensions["network_stream"].get_extra_info("ssl_object").getpeercert(True)
    return int(x509.load_der_x509_certificate(der).serial_number)


def _renewer(paths: Paths, server: pebble.Pebble, events: list[str]) -> tuple[Renewer, Any]:
    issuer = Issuer(
        server.directory,
        "ops@example.test",
        paths.home / "acme-account.json",
        ca_bundle=str(server.ca_bundle),
    )
    routes = RemoteRoutes(paths.socket, retry_for=5)
    renewer = Renewer(issuer, routes, lambda obj, msg: events.append(f"system/{obj} {msg}"))
    return renewer, routes


def test_issue_serve_and_renew_under_load(paths: Paths, served: tuple[str, pebble.Pebble]) -> None:
    url, server = served
    events: list[str] = []

    async def go(force: bool) -> None:
        renewer, routes = _renewer(paths, server, events)
        try:
            await renewer.check([DOMAIN], force=force)
        finally:
            await routes.aclose()

    asyncio.run(go(force=False))
    assert events[0] == f"system/router/cert/{DOMAIN} Requesting certificate"
    assert events[1].startswith(f"system/router/cert/{DOMAIN} Issued, expires 20"), events
    trust = _roots(server)
    first = _serial(url, trust)
    # Not due: a second check does nothing.
    asyncio.run(go(force=False))
    assert len(events) == 2

    kept = Load(url, DOMAIN, 4, verify=trust)
    fresh = Load(url, DOMAIN, 2, verify=trust, fresh=True)
    time.sleep(1)
    asyncio.run(go(force=True))
    time.sleep(1)
    outcomes = kept.stop() + fresh.stop()
    assert events[2] == f"system/router/cert/{DOMAIN} Renewing"
    assert events[3].startswith(f"system/router/cert/{DOMAIN} Issued, expires"), events
    failed = [o for o in outcomes if o.problem is not None]
    assert not failed, failed[:5]
    assert len(outcomes) > 50
    assert _serial(url, trust) != first  # new connections get the renewed certificate


def test_a_failed_validation_is_an_event_and_backs_off(
    paths: Paths, served: tuple[str, pebble.Pebble]
) -> None:
    _, server = served
    events: list[str] = []

    class Silent(RemoteRoutes):
        # The challenge answer never reaches the router, so Pebble's fetch of the token
        # gets the router's 404 (the name routes nowhere) and validation fails for real.
        async def set_challenge(self, token: str, answer: str | None) -> None:
            return None

    async def go() -> Renewer:
        renewer, routes = _renewer(paths, server, events)
        await routes.aclose()
        silent = Silent(paths.socket, retry_for=5)
        renewer.router = silent
        try:
            await renewer.check(["nowhere.example.test"])
            await renewer.check(["nowhere.example.test"])  # backing off: no second attempt
        finally:
            await silent.aclose()
        return renewer

    renewer = asyncio.run(go())
    assert events[0] == "system/router/cert/nowhere.example.test Requesting certificate"
    assert events[1].startswith("system/router/cert/nowhere.example.test Failed: ")
    assert events[1].endswith("; retrying in 60s")
    assert "404" in events[1] or "nowhere.example.test" in events[1], events[1]
    assert len(events) == 2 and renewer.failures == {"nowhere.example.test": 1}
    assert "\n" not in events[1]
