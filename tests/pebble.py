"""Pebble, Let's Encrypt's test ACME server (Debian's `pebble` package), on loopback for a test.

pebble-challtestsrv answers Pebble's DNS queries with 127.0.0.1 for every name, and Pebble's
HTTP-01 validation goes to that address on `http_port`: the router's HTTP port. Validation is
real (no PEBBLE_VA_ALWAYS_VALID): Pebble fetches /.well-known/acme-challenge/TOKEN from the
router and checks the answer. Its own HTTPS uses a certificate of the test's CA.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.tls import CA


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    # A port free for TCP and UDP alike (the DNS server takes both).
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@dataclass
class Pebble:
    directory: str
    ca_bundle: Path
    processes: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start(workdir: Path, http_port: int, validity: int | None = None) -> Pebble:
    """Pebble validating HTTP-01 on `http_port`; `validity` (seconds) for the certificates
    it issues (its own default: five years)."""
    if shutil.which("pebble") is None or shutil.which("pebble-challtestsrv") is None:
        if os.environ.get("SHIPMATE_REQUIRE_PEBBLE"):
            pytest.fail("pebble is not installed (apt-get install pebble)", pytrace=False)
        pytest.skip("pebble is not installed (apt-get install pebble)")
    workdir.mkdir(parents=True, exist_ok=True)
    ca = CA.make("pebble listener CA")
    cert, key = ca.issue("localhost", "127.0.0.1")
    (workdir / "cert.pem").write_text(cert)
    (workdir / "key.pem").write_text(key)
    bundle = ca.write(workdir)
    dns, acme, management, tls = (_free_port() for _ in range(4))
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{acme}",
            "managementListenAddress": f"127.0.0.1:{management}",
            "certificate": str(workdir / "cert.pem"),
            "privateKey": str(workdir / "key.pem"),
            "httpPort": http_port,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            **({"certificateValidityPeriod": validity} if validity else {}),
        }
    }
    (workdir / "pebble.json").write_text(json.dumps(config))
    log = (workdir / "pebble.log").open("ab")
    challtest = subprocess.Popen(
        [
            "pebble-challtestsrv",
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-dns01",
            f"127.0.0.1:{dns}",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            f"127.0.0.1:{_free_port()}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    # No sleeps before validating, and no nonce rejected on purpose: the test is about
    # issuance and renewal, not about Pebble's chaos. Validation itself stays real.
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    env.pop("PEBBLE_VA_ALWAYS_VALID", None)
    pebble = subprocess.Popen(
        ["pebble", "-config", str(workdir / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    running = Pebble(f"https://127.0.0.1:{acme}/dir", bundle, [pebble, challtest])
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(running.directory, verify=str(bundle), timeout=2).status_code == 200:
                return running
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or pebble.poll() is not None:
            running.stop()
            text = (workdir / "pebble.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pebble did not start:\n{text}")
        time.sleep(0.1)
