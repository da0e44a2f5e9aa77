"""Acceptance (issue 15): the rack obtains a certificate from Pebble (Let's Encrypt's test
server, real HTTP-01 validation through the router's HTTP port) for the domain of a deployed
app, serves it, renews it when it is due (Pebble issues 29-day certificates here, so each one
is due at once: the renewal is the policy's own, not a test hook), and keeps serving through
the renewals with no failed request, on kept-alive and new connections."""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import time
from pathlib import Path

import httpx
import yaml
from cryptography import x509

from shipmate.common.waiting import poll_until
from tests import pebble
from tests.integration.conftest import (
    EXAMPLE,
    Rack,
    reachable_home,
    remove_apps,
    remove_home,
    stop_rack,
)
from tests.integration.load import Load
from tests.router.test_router import free_port

HOST = "acme.example.test"
DAYS = 29


def _roots(server: pebble.Pebble) -> ssl.SSLContext:
    config = json.loads((server.ca_bundle.parent / "pebble.json").read_text())
    address = config["pebble"]["managementListenAddress"]
    trust = ssl.create_default_context(cafile=str(server.ca_bundle))
    root = httpx.get(f"https://{address}/roots/0", verify=trust, timeout=10)
    return ssl.create_default_context(cadata=root.text)


def _serial(rack: Rack, trust: ssl.SSLContext) -> int | None:
    try:
        with httpx.Client(verify=trust, timeout=10) as client:
            resp = client.get(
                rack.info["router_https"], headers={"Host": HOST}, extensions={"sni_hostname": HOST}
            )
            stream = resp.extensions["network_stream"]
            der = stream.get_extra_info("ssl_object").getpeercert(True)
    except httpx.HTTPError:
        return None
    return (
        int(x509.load_der_x509_certificate(der).serial_number) if resp.status_code == 200 else None
    )


def test_a_certificate_from_pebble_served_and_renewed_under_load(tmp_path: Path) -> None:
    port = free_port()
    server = pebble.start(tmp_path / "pebble", port, validity=DAYS * 86400)
    home = reachable_home(tmp_path / "rack")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    # The rack's ACME client (requests, under certbot's library) trusts Pebble's listener.
    env.update(SHIPMATE_HOME=str(home), REQUESTS_CA_BUNDLE=str(server.ca_bundle))
    rack = Rack(home, env)
    loads: list[Load] = []
    try:
        rack.ok(
            "rack",
            "start",
            "--detach",
            "--api",
            "127.0.0.1:0",
            "--router",
            f"127.0.0.1:{port}",
            "--router-https",
            "127.0.0.1:0",
            "--acme-directory",
            server.directory,
            "--acme-email",
            "ops@example.test",
        )
        source = tmp_path / "app"
        shutil.copytree(EXAMPLE, source)
        manifest = yaml.safe_load((source / "shipmate.yml").read_text())
        manifest["services"]["web"]["domain"] = HOST
        (source / "shipmate.yml").write_text(yaml.safe_dump(manifest))
        rack.deploy("shop", source)
        trust = _roots(server)
        first = poll_until(lambda: _serial(rack, trust), 60, what="a certificate from Pebble")
        loads = [
            Load(rack.info["router_https"], HOST, 4, verify=trust),
            Load(rack.info["router_https"], HOST, 2, verify=trust, fresh=True),
        ]
        # Due at once (29 days < 30): the next pass renews it; the load runs meanwhile.
        renewed = poll_until(
            lambda: (s := _serial(rack, trust)) is not None and s != first and s,
            60,
            what="the renewed certificate",
        )
        time.sleep(1)
        kept, fresh = (load.stop() for load in loads)
        loads = []
        events = rack.ok("logs", "-a", "shop", "--no-follow", "--since", "10m")
        certs = rack.ok("certs")
    finally:
        for load in loads:
            load.stop()
        remove_apps(rack)
        stop_rack(rack)
        remove_home(home)
        server.stop()

    cert_lines = [line for line in events.splitlines() if f"system/router/cert/{HOST}" in line]
    assert cert_lines, events
    print("\n" + "\n".join(cert_lines[:4]))
    assert re.search(rf"system/router/cert/{HOST} Requesting certificate$", cert_lines[0])
    assert re.search(
        rf"system/router/cert/{HOST} Issued, expires \d{{4}}-\d\d-\d\d$", cert_lines[1]
    )
    assert any(line.endswith(f"system/router/cert/{HOST} Renewing") for line in cert_lines)
    assert renewed != first
    assert re.search(
        rf"^{HOST}\s+Pebble Intermediate CA \w+\s+\d{{4}}-\d\d-\d\d\s+renewing$", certs, re.M
    ), certs
    failed = [o for o in kept + fresh if o.problem is not None]
    print(f"{len(kept)} kept-alive and {len(fresh)} new-connection requests, {len(failed)} failed")
    assert not failed, failed[:5]
    assert len(kept) > 20 and len(fresh) > 5
