"""Custom domains and certificates in the core: manifest keys, `${VAR}`, claims, renewal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shipmate.domain.certs import covers, read_cert, renewal_due, retry_delay, status
from shipmate.domain.domains import (
    Claim,
    check_domain,
    check_free,
    expand,
    manifest_claims,
    redirects,
)
from shipmate.domain.errors import Conflict, InvalidInput, ManifestError
from shipmate.domain.manifest import load_manifest
from tests.tls import CA

MANIFEST = """
services:
  web:
    command: run
    port: 5000
    domain:
      - ${HOST}
      - www.${HOST}
    https: redirect
  api:
    command: run
    port: 5001
    domain: api.example.com
"""


def test_domain_is_one_name_or_a_list_and_https_redirect_is_per_service() -> None:
    manifest = load_manifest(MANIFEST)
    assert manifest.service("web").domains == ("${HOST}", "www.${HOST}")
    assert manifest.service("api").domains == ("api.example.com",)
    assert redirects(manifest) == {"web"}
    with pytest.raises(ManifestError, match=r"services\.web\.https.*expected `redirect`"):
        load_manifest("services:\n  web:\n    port: 1\n    https: yes-please\n")
    with pytest.raises(ManifestError, match=r"services\.web\.domain\[0\]"):
        load_manifest("services:\n  web:\n    port: 1\n    domain: [3]\n")


def test_claims_expand_the_release_env() -> None:
    claims = manifest_claims("shop", load_manifest(MANIFEST), {"HOST": "Shop.Example.COM"})
    assert claims == [
        Claim("shop.example.com", "shop", "web", "manifest"),
        Claim("www.shop.example.com", "shop", "web", "manifest"),
        Claim("api.example.com", "shop", "api", "manifest"),
    ]
    with pytest.raises(InvalidInput, match=r"uses \$\{HOST\}, which the release's env lacks"):
        manifest_claims("shop", load_manifest(MANIFEST), {})
    assert expand("a.${X}.b", {"X": "y"}, "here") == "a.y.b"


def test_names_and_wildcards() -> None:
    assert check_domain("WWW.Example.com.") == "www.example.com"
    assert check_domain("*.example.com") == "*.example.com"
    for bad in ("localhost", "a..b", "*.*.example.com", "ex ample.com", "a.b/c"):
        with pytest.raises(InvalidInput, match="invalid domain"):
            check_domain(bad)


def test_a_name_is_one_apps() -> None:
    taken = [Claim("a.example.com", "one", "web", "manual")]
    check_free([Claim("a.example.com", "one", "api", "manifest")], taken)  # same app: fine
    with pytest.raises(Conflict, match=r"^domain a\.example\.com belongs to app one: remove"):
        check_free([Claim("a.example.com", "two", "web", "manual")], taken)


def test_renewal_policy() -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    assert renewal_due(None, now)
    assert renewal_due(now + timedelta(days=30), now)
    assert not renewal_due(now + timedelta(days=31), now)
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3)] == [60, 120, 240]
    assert retry_delay(40) == timedelta(hours=6)
    assert status(now + timedelta(days=60), now) == "valid"
    assert status(now + timedelta(days=3), now) == "renewing"
    assert status(now - timedelta(days=1), now) == "expired"


def test_read_cert_checks_the_key() -> None:
    ca = CA.make()
    cert, key = ca.issue("*.example.com")
    facts = read_cert(cert, key)
    assert facts.names == ("*.example.com",) and facts.issuer == "shipmate test CA"
    assert covers(facts.names, "a.example.com") and not covers(facts.names, "a.b.example.com")
    with pytest.raises(InvalidInput, match="the key is not the certificate's"):
        read_cert(cert, ca.issue("x.example.com")[1])
    with pytest.raises(InvalidInput, match="not PEM"):
        read_cert("nope", key)
