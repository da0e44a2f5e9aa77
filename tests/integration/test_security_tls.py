"""Where the API listens: loopback by default, HTTPS or an explicit --insecure elsewhere."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.conftest import Rack, stop_rack


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shipmate test rack")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "rack.crt", directory / "rack.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def new_rack(home: Path) -> Rack:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env["SHIPMATE_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)  # the CLI runs there
    return Rack(home, env)


@pytest.fixture(scope="module")
def tls_rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Rack, Path]]:
    base = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(base)
    rack = new_rack(base / "home")
    rack.ok(
        "rack", "start", "--detach", "--api", "127.0.0.1:0", "--router", "127.0.0.1:0",
        "--tls-cert", str(cert), "--tls-key", str(key),
    )  # fmt: skip
    try:
        yield rack, cert
    finally:
        stop_rack(rack)


def test_the_api_serves_https_with_the_given_certificate(tls_rack: tuple[Rack, Path]) -> None:
    rack, cert = tls_rack
    api = rack.info["api"]
    assert api.startswith("https://127.0.0.1:")
    trusting = Rack(rack.home, dict(rack.env, SHIPMATE_CA_CERT=str(cert)))
    assert trusting.ok("apps").startswith("APP")
    # Without trusting the certificate, the CLI refuses to talk to the rack.
    result = rack.run("apps")
    assert result.code == 1 and result.err.startswith(f"ERROR: cannot reach the rack at {api}")
    assert result.err.count("\n") == 1
    # Plain HTTP on the same port gets nowhere.
    with pytest.raises(httpx.HTTPError):
        httpx.get(api.replace("https://", "http://") + "/health", timeout=10)
    token = (rack.home / "token").read_text().strip()
    trust = ssl.create_default_context(cafile=cert)
    headers = {"Authorization": f"Bearer {token}"}
    response = httpx.get(f"{api}/apps", headers=headers, verify=trust, timeout=10)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["--api", "0.0.0.0:0"],
            "ERROR: --api 0.0.0.0:0 is reachable from other machines and tokens would cross the "
            "network in clear text: give --tls-cert and --tls-key, or --insecure if a TLS proxy "
            "in front of the rack encrypts the traffic (see docs/SECURITY.md)\n",
        ),
        (
            ["--api", "127.0.0.1:0", "--tls-cert", "/nonexistent.crt"],
            "ERROR: --tls-cert and --tls-key go together: give both or neither\n",
        ),
        (
            ["--api", "127.0.0.1:0", "--tls-cert", "/no.crt", "--tls-key", "/no.key"],
            "ERROR: cannot read /no.crt: give a readable PEM file\n",
        ),
    ],
)
def test_unsafe_bindings_are_refused_before_anything_starts(
    tmp_path: Path, args: list[str], error: str
) -> None:
    rack = new_rack(tmp_path / "home")
    result = rack.run("rack", "start", "--detach", "--router", "127.0.0.1:0", *args)
    assert (result.code, result.err) == (1, error)
    assert not (tmp_path / "home" / "rack.json").exists()
