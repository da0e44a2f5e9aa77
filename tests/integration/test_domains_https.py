"""Acceptance (issue 15): an app deployed with `domain: ${HOST}` is reached by that name over
HTTPS with an imported certificate (verified against its CA) and redirected there from HTTP;
a name is one app's only; and rollbacks under HTTPS load (kept-alive connections and a new
connection per request) fail no request."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx
import yaml

from shipmate.common.waiting import poll_until
from tests.integration.conftest import (
    EXAMPLE,
    Rack,
    reachable_home,
    remove_apps,
    remove_home,
    start_rack,
    stop_rack,
)
from tests.integration.load import Load
from tests.tls import CA

HOST = "shop.example.test"
ROLLBACKS = 4


def domain_app(where: Path) -> Path:
    source = where / "shop"
    shutil.copytree(EXAMPLE, source)
    manifest = yaml.safe_load((source / "shipmate.yml").read_text())
    web = manifest["services"]["web"]
    web["scale"] = {"count": 2}
    web["domain"] = "${HOST}"
    web["https"] = "redirect"
    (source / "shipmate.yml").write_text(yaml.safe_dump(manifest))
    return source


def https_get(rack: Rack, ca: CA, name: str = HOST) -> httpx.Response:
    with httpx.Client(verify=ca.client_context(), timeout=10) as client:
        return client.get(
            rack.info["router_https"] + "/",
            headers={"Host": name},
            extensions={"sni_hostname": name},
        )


def release_of(out: str, pattern: str = r"^Release: (R[A-Z]{9})$") -> str:
    found = re.search(pattern, out, re.M)
    assert found is not None, out
    return found.group(1)


def test_domain_https_redirect_claims_and_rollbacks_under_https_load(tmp_path: Path) -> None:
    home = reachable_home(tmp_path / "rack")
    rack = start_rack(home)
    ca = CA.make()
    cert, key = ca.issue(HOST)
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    loads: list[Load] = []
    try:
        rack.ok("apps", "create", "shop")
        source = domain_app(tmp_path)
        # `${HOST}` needs HOST in the release's env: refused before anything runs.
        refused = rack.run("deploy", str(source), "-a", "shop")
        assert refused.code == 1
        assert refused.err.strip().endswith(
            "services.web.domain uses ${HOST}, which the release's env lacks: set it"
        ), refused.err
        r1 = release_of(rack.ok("env", "set", f"HOST={HOST}", "--promote", "-a", "shop"))

        out = rack.ok(
            "certs", "import", HOST, str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
        )
        assert re.fullmatch(
            rf"Importing certificate for {HOST}\.\.\. OK, expires \d{{4}}-\d\d-\d\d\n", out
        )
        lines = rack.ok("certs").splitlines()
        assert lines[0].split() == ["DOMAIN", "ISSUER", "EXPIRES", "STATUS"]
        assert re.match(rf"{HOST}\s+shipmate test CA\s+\d{{4}}-\d\d-\d\d\s+valid$", lines[1])

        # The router learns the name within a second of the promotion.
        resp = poll_until(
            lambda: (r := https_get(rack, ca)).status_code == 200 and r, 15, what="HTTPS"
        )
        assert resp.json()["release"] == r1
        plain = httpx.get(rack.info["router"] + "/x?y=1", headers={"Host": HOST}, timeout=10)
        port = rack.info["router_https"].rsplit(":", 1)[1]
        assert plain.status_code == 301
        assert plain.headers["location"] == f"https://{HOST}:{port}/x?y=1"

        info = rack.ok("apps", "info", "-a", "shop")
        assert re.search(rf"^Domains\s+{HOST} \(web\)$", info, re.M), info

        # A name is one app's: another app's claim is refused in one line, nothing changes.
        rack.ok("apps", "create", "other")
        taken = rack.run("domains", "add", HOST, "-a", "other")
        assert taken.code == 1
        assert taken.err == (
            f"ERROR: domain {HOST} belongs to app shop: remove it there first "
            f"(`shipmate domains remove {HOST} -a shop`)\n"
        )
        assert rack.ok("domains", "add", "*.shop.test", "-a", "shop") == (
            "Adding *.shop.test to shop... OK\n"
        )
        listing = rack.ok("domains", "-a", "shop").splitlines()
        assert [line.split() for line in listing] == [
            ["DOMAIN", "SERVICE", "SOURCE"],
            ["*.shop.test", "web", "manual"],
            [HOST, "web", "manifest"],
        ]

        r2 = release_of(rack.ok("env", "set", "FOO=two", "--promote", "-a", "shop"))
        loads = [
            Load(rack.info["router_https"], HOST, 6, verify=ca.client_context()),
            Load(rack.info["router_https"], HOST, 2, verify=ca.client_context(), fresh=True),
        ]
        began = time.monotonic()
        time.sleep(1)
        for i in range(ROLLBACKS):
            rack.ok("releases", "rollback", r1 if i % 2 == 0 else r2, "-a", "shop")
            time.sleep(0.5)
        time.sleep(1)
        kept, fresh = (load.stop() for load in loads)
        loads = []
        took = time.monotonic() - began
    finally:
        for load in loads:
            load.stop()
        remove_apps(rack)
        stop_rack(rack)
        remove_home(home)

    failed = [o for o in kept + fresh if o.problem is not None]
    print(
        f"\nHTTPS: {len(kept)} requests on 6 kept-alive connections and {len(fresh)} on new "
        f"connections in {took:.0f}s over {ROLLBACKS} rollbacks, {len(failed)} failed"
    )
    assert not failed, failed[:5]
    assert len(kept) > 100 and len(fresh) > 20
