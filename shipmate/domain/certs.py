"""When a certificate is due, and how long to wait after a failed attempt: the renewal policy,
pure, so that it is tested without an ACME server or a clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from shipmate.domain.errors import InvalidInput

# Let's Encrypt's advice (and certbot's default): renew 30 days before expiry, which leaves
# weeks of retries before anything expires.
RENEW_BEFORE = timedelta(days=30)
# After a failure: 1 min, 2, 4, ... up to 6 hours between attempts.
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=6)


def renewal_due(
    not_after: datetime | None, now: datetime, before: timedelta = RENEW_BEFORE
) -> bool:
    """True when there is no certificate yet or it expires within `before`."""
    return not_after is None or not_after - now <= before


def retry_delay(failures: int, first: timedelta = FIRST_RETRY) -> timedelta:
    """The wait before the next attempt after `failures` failures in a row (1, 2, ...)."""
    if failures <= 0:
        return timedelta(0)
    delay: timedelta = first * (2 ** min(failures - 1, 20))
    return min(delay, LONGEST_RETRY)


def status(not_after: datetime, now: datetime, before: timedelta = RENEW_BEFORE) -> str:
    """What `shipmate certs` shows in STATUS: valid, renewing (due), or expired."""
    if not_after <= now:
        return "expired"
    return "renewing" if renewal_due(not_after, now, before) else "valid"


@dataclass(frozen=True)
class CertFacts:
    names: tuple[str, ...]  # what it covers (subject alternative names, else the CN)
    issuer: str
    not_after: datetime


def read_cert(cert_pem: str, key_pem: str) -> CertFacts:
    """What a PEM certificate (leaf first) covers, who issued it and when it expires, after
    checking that `key_pem` is its key; InvalidInput in one line otherwise."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        raise InvalidInput("the certificate is not PEM (-----BEGIN CERTIFICATE-----)") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise InvalidInput("the key is not an unencrypted PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != cert.public_key().public_bytes(
        encoding, public
    ):
        raise InvalidInput("the key is not the certificate's: give the key it was issued for")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(n.lower() for n in san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    if not names:
        names = tuple(
            str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        )
    issuer_cn = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    issuer = str(issuer_cn[0].value) if issuer_cn else cert.issuer.rfc4514_string()
    return CertFacts(names, issuer, cert.not_valid_after_utc)


def covers(names: tuple[str, ...], domain: str) -> bool:
    """Whether a certificate for `names` is valid for `domain` (one-label wildcards)."""
    if domain in names:
        return True
    parent = domain.partition(".")[2]
    return bool(parent) and "*." + parent in names
