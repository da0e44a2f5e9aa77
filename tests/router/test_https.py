"""HTTPS in the router daemon, for real: its TLS listener, certificates chosen by SNI and
swapped while connections stay open, custom domains, the redirect from HTTP and the ACME
HTTP-01 answers on the HTTP port (from every router process)."""

from __future__ import annotations

import json
import socket
import ssl
import stat
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shipmate.router import lifecycle
from shipmate.router.home import Paths
from shipmate.router.remote import RouterError
from tests.router.test_daemon import call
from tests.router.test_router import Backend
from tests.tls import CA, peer_names

DOMAIN = "app.example.com"


@pytest.fixture
def backend() -> Iterator[Backend]:
    a = Backend("a")
    yield a
    a.stop()


@pytest.fixture
def ca() -> CA:
    return CA.make()


def https_url(paths: Paths) -> str:
    answer: Any = call(paths, "certs")
    return str(answer["https"])


def get_tls(
    client: httpx.Client, url: str, name: str, path: str = "/"
) -> tuple[httpx.Response, list[str]]:
    """GET `path` from `url` as https://`name` (SNI and Host), and the names of the
    certificate the router presented."""
    resp = client.get(url + path, headers={"Host": name}, extensions={"sni_hostname": name})
    stream = resp.extensions["network_stream"]
    der = stream.get_extra_info("ssl_object").getpeercert(True)
    return resp, peer_names(der)


def serve(paths: Paths, backend: Backend, ca: CA, workers: int = 1) -> tuple[str, str]:
    info = lifecycle.start(paths, "127.0.0.1:0", workers=workers, listen_https="127.0.0.1:0")
    call(paths, "set_backends", "myapp", "web", [backend.addr])
    call(paths, "set_sites", {DOMAIN: ("myapp", "web")}, [])
    call(paths, "put_cert", DOMAIN, *ca.issue(DOMAIN))
    return info.url, https_url(paths)


def test_https_by_domain_with_forwarded_headers(paths: Paths, backend: Backend, ca: CA) -> None:
    _, url = serve(paths, backend, ca)
    with httpx.Client(verify=ca.client_context(), timeout=10) as client:
        resp, names = get_tls(client, url, DOMAIN, "/hello?x=1")
    assert resp.status_code == 200 and names == [DOMAIN]
    headers = resp.json()["headers"]
    assert headers["X-Forwarded-Proto"] == "https"
    assert headers["X-Forwarded-Host"] == DOMAIN
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert resp.json()["path"] == "/hello?x=1"
    # TLS 1.2 is accepted as well as 1.3; anything older is not.
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = ca.client_context()
        context.minimum_version = context.maximum_version = version
        with httpx.Client(verify=context, timeout=10) as client:
            resp, _ = get_tls(client, url, DOMAIN)
            assert resp.status_code == 200
            version_used = resp.extensions["network_stream"].get_extra_info("ssl_object")
            assert version_used.version() == version.name.replace("_", ".")


def test_sni_chooses_the_certificate_and_wildcards_route(
    paths: Paths, backend: Backend, ca: CA
) -> None:
    _, url = serve(paths, backend, ca)
    call(paths, "set_sites", {DOMAIN: ("myapp", "web"), "*.apps.test": ("myapp", "web")}, [])
    call(paths, "put_cert", "apps.test", *ca.issue("*.apps.test"))
    # A client per name: httpx would reuse one connection (one SNI) for every name.
    for name, expected in (("shop.apps.test", "*.apps.test"), (DOMAIN, DOMAIN)):
        with httpx.Client(verify=ca.client_context(), timeout=10) as client:
            resp, names = get_tls(client, url, name)
        assert resp.status_code == 200 and names == [expected]
    with httpx.Client(verify=ca.client_context(), timeout=10) as client:
        # A name with no route is the router's 404, over TLS like anything else.
        extensions = {"sni_hostname": DOMAIN}
        resp = client.get(url, headers={"Host": "a.b.apps.test"}, extensions=extensions)
        assert resp.status_code == 404


def test_a_new_certificate_serves_new_connections_and_keeps_open_ones(
    paths: Paths, backend: Backend, ca: CA
) -> None:
    _, url = serve(paths, backend, ca)
    other = CA.make("second CA")
    trust = ca.client_context()
    trust.load_verify_locations(cadata=other.pem)
    with httpx.Client(verify=trust, timeout=10) as kept:
        first, _ = get_tls(kept, url, DOMAIN)
        before = first.extensions["network_stream"].get_extra_info("ssl_object")
        call(paths, "put_cert", DOMAIN, *other.issue(DOMAIN))
        # The kept-alive connection goes on with the certificate it was made with.
        again, _ = get_tls(kept, url, DOMAIN)
        after = again.extensions["network_stream"].get_extra_info("ssl_object")
        assert again.status_code == 200 and after is before
        issuer = x509_issuer(after.getpeercert(True))
        assert issuer == "shipmate test CA"
    with httpx.Client(verify=trust, timeout=10) as fresh:
        resp, _ = get_tls(fresh, url, DOMAIN)
        der = resp.extensions["network_stream"].get_extra_info("ssl_object").getpeercert(True)
        assert resp.status_code == 200 and x509_issuer(der) == "second CA"


def x509_issuer(der: bytes) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    return str(cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_redirect_and_acme_answers_on_every_router_process(
    paths: Paths, backend: Backend, ca: CA
) -> None:
    http, url = serve(paths, backend, ca, workers=2)
    port = url.rsplit(":", 1)[1]
    call(paths, "set_sites", {DOMAIN: ("myapp", "web")}, [("myapp", "web")])
    call(paths, "set_challenge", "tok-123", "tok-123.thumbprint")
    # New connections each time, so that both router processes answer some of them.
    for _ in range(8):
        resp = httpx.get(http + "/a/b?c=d", headers={"Host": DOMAIN + ":80"}, timeout=10)
        assert resp.status_code == 301
        assert resp.headers["location"] == f"https://{DOMAIN}:{port}/a/b?c=d"
        post = httpx.post(http + "/form", headers={"Host": DOMAIN}, content=b"x", timeout=10)
        assert post.status_code == 308
        token = httpx.get(
            http + "/.well-known/acme-challenge/tok-123", headers={"Host": DOMAIN}, timeout=10
        )
        assert token.status_code == 200 and token.text == "tok-123.thumbprint"
        # The rack's own names are not redirected: they have no certificate.
        plain = httpx.get(http + "/", headers={"Host": "web.myapp.localhost"}, timeout=10)
        assert plain.status_code == 200 and plain.json()["headers"]["X-Forwarded-Proto"] == "http"
    call(paths, "set_challenge", "tok-123", None)
    call(paths, "set_sites", {DOMAIN: ("myapp", "web")}, [])
    resp = httpx.get(http + "/.well-known/acme-challenge/tok-123", headers={"Host": DOMAIN})
    assert resp.status_code == 200 and resp.json()["backend"] == "a"  # the app's, now


def test_certificates_survive_a_restart_in_a_private_file(
    paths: Paths, backend: Backend, ca: CA
) -> None:
    serve(paths, backend, ca)
    assert stat.S_IMODE(paths.certs.stat().st_mode) == 0o600
    assert DOMAIN in json.loads(paths.certs.read_text())
    lifecycle.stop(paths)
    lifecycle.start(paths, "127.0.0.1:0", listen_https="127.0.0.1:0")
    url = https_url(paths)
    with httpx.Client(verify=ca.client_context(), timeout=10) as client:
        resp, names = get_tls(client, url, DOMAIN)
    assert resp.status_code == 200 and names == [DOMAIN]


def test_bad_certificates_and_sites_are_refused_in_one_line(
    paths: Paths, backend: Backend, ca: CA
) -> None:
    serve(paths, backend, ca)
    cert, _ = ca.issue(DOMAIN)
    _, wrong_key = ca.issue(DOMAIN)
    with pytest.raises(RouterError, match="the certificate and key do not go together"):
        call(paths, "put_cert", DOMAIN, cert, wrong_key)
    with pytest.raises(RouterError, match="not a PEM certificate"):
        call(paths, "put_cert", DOMAIN, "nope", wrong_key)
    with pytest.raises(RouterError, match="invalid domain 'bad_name!'"):
        call(paths, "set_sites", {"bad_name!": ("myapp", "web")}, [])
    # Nothing changed: the first certificate still serves.
    with httpx.Client(verify=ca.client_context(), timeout=10) as client:
        assert get_tls(client, https_url(paths), DOMAIN)[0].status_code == 200


def test_a_router_without_https_says_how_to_get_it(paths: Paths, ca: CA) -> None:
    lifecycle.start(paths, "127.0.0.1:0")
    with pytest.raises(RouterError, match=r"no HTTPS listener: `shipmate rack stop --all`, then"):
        call(paths, "put_cert", DOMAIN, *ca.issue(DOMAIN))


def test_the_stream_path_over_tls_says_https_too(paths: Paths, backend: Backend, ca: CA) -> None:
    # HTTP/1.0 is the stream path's: the fast path hands the TLS connection over.
    _, url = serve(paths, backend, ca)
    port = int(url.rsplit(":", 1)[1])
    context = ca.client_context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=DOMAIN) as tls,
    ):
        tls.sendall(f"GET /old HTTP/1.0\r\nHost: {DOMAIN}\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["headers"]["X-Forwarded-Proto"] == "https"
