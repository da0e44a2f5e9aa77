"""The router's certificates: one TLS context per certificate, chosen by SNI.

The listener's own context only negotiates (TLS 1.2 and 1.3, HTTP/1.1 by ALPN); its SNI
callback swaps in the context of the certificate that covers the name asked for. Replacing a
certificate replaces one dict entry, so a new connection gets the new one at once and a
connection already made keeps the one it was made with: no restart, nothing dropped.
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertInfo:
    name: str
    names: tuple[str, ...]  # what it covers (its subject alternative names)
    issuer: str
    not_after: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "names": list(self.names),
            "issuer": self.issuer,
            "expires": self.not_after.isoformat().replace("+00:00", "Z"),
        }


def describe(name: str, cert_pem: str) -> CertInfo:
    """What a PEM certificate (its first, the leaf) covers, who issued it, when it expires.
    ValueError when it is not a certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(n.lower() for n in san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    if not names:
        common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        names = tuple(str(a.value).lower() for a in common)
    issuer_cn = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    issuer = str(issuer_cn[0].value) if issuer_cn else cert.issuer.rfc4514_string()
    return CertInfo(name, names, issuer, cert.not_valid_after_utc)


def server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


def _context(cert_pem: str, key_pem: str) -> ssl.SSLContext:
    context = server_context()
    # ssl loads chains from files only; the key is on disk for as long as this call takes,
    # in a directory only this user can read.
    with tempfile.TemporaryDirectory(prefix="shipmate-tls-") as tmp:
        cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_file.write_text(cert_pem)
        key_file.write_text(key_pem)
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise ValueError(f"the certificate and key do not go together ({exc.reason})") from None
    return context


class Certificates:
    """name -> (certificate, key) as PEM, and the contexts that serve them."""

    def __init__(self) -> None:
        self.pems: dict[str, tuple[str, str]] = {}
        self.info: dict[str, CertInfo] = {}
        # covered host name (or "*.parent") -> context; rebuilt on every change
        self._by_name: dict[str, ssl.SSLContext] = {}
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._default: ssl.SSLContext | None = None
        self.listener = server_context()
        self.listener.sni_callback = self._choose

    def put(self, name: str, cert_pem: str, key_pem: str) -> CertInfo:
        """Add or replace a certificate; ValueError when it is unusable (nothing changes)."""
        try:
            info = describe(name, cert_pem)
        except ValueError:
            raise ValueError(f"{name}: not a PEM certificate") from None
        context = _context(cert_pem, key_pem)
        self.pems[name] = (cert_pem, key_pem)
        self.info[name] = info
        self._contexts[name] = context
        self._index()
        return info

    def remove(self, name: str) -> bool:
        found = self.pems.pop(name, None) is not None
        self.info.pop(name, None)
        self._contexts.pop(name, None)
        self._index()
        return found

    def _index(self) -> None:
        # Later expiry wins when two certificates cover a name (a renewed one beside the old).
        by_name: dict[str, ssl.SSLContext] = {}
        for name in sorted(self.info, key=lambda n: self.info[n].not_after):
            for covered in self.info[name].names:
                by_name[covered] = self._contexts[name]
        self._by_name = by_name
        self._default = next(iter(self._contexts.values()), None)

    def _choose(self, sock: ssl.SSLObject, server_name: str | None, old: ssl.SSLContext) -> None:
        by_name = self._by_name
        context = None
        if server_name:
            name = server_name.lower()
            context = by_name.get(name)
            if context is None:
                parent = name.partition(".")[2]
                context = by_name.get("*." + parent) if parent else None
        # No SNI (an IP address) or an unknown name: some certificate rather than a failed
        # handshake; the client's check says whether it fits.
        context = context or self._default
        if context is not None:
            sock.context = context

    def as_json(self) -> dict[str, dict[str, str]]:
        return {name: {"cert": c, "key": k} for name, (c, k) in sorted(self.pems.items())}

    def load(self, data: dict[str, Any]) -> None:
        for name, pem in data.items():
            self.put(name, pem["cert"], pem["key"])
