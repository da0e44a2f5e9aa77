"""Custom domains as the router sees them: which name goes to which (app, service), which
services send plain HTTP on to HTTPS, and the ACME HTTP-01 answers it must give meanwhile.

The rack hands the router the whole of it (`PUT /sites`, challenges one by one); the router
only looks names up. A `Sites` is immutable and replaced wholesale, like a route's backend
tuple, so a request reads one consistent version without a lock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str]  # (app, service)

# A host name of letters, digits and hyphens (IDNs arrive as punycode), optionally "*." first.
_NAME = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_LABEL = re.compile(r"[a-z0-9][a-z0-9_-]*")
CHALLENGE_PREFIX = b"/.well-known/acme-challenge/"


def check_domain(name: str) -> str:
    """The name lower-cased; ValueError when it is not a host name or `*.` + one."""
    name = name.strip().lower().rstrip(".")
    if len(name) > 253 or not _NAME.fullmatch(name):
        raise ValueError(f"invalid domain {name!r}: use a host name such as www.example.com")
    return name


def check_token(token: str) -> str:
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"invalid ACME token {token!r}")
    return token


@dataclass(frozen=True)
class Sites:
    domains: Mapping[str, Key] = field(default_factory=dict)
    redirects: frozenset[Key] = frozenset()
    challenges: Mapping[str, str] = field(default_factory=dict)
    # Whether plain HTTP requests need a look before they are routed (redirect, ACME): read
    # on every request, so computed once rather than a property.
    active: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "active", bool(self.redirects or self.challenges))

    def lookup(self, name: str) -> Key | None:
        """(app, service) for a host name (no port, lower case); an exact name wins over a
        wildcard, and a wildcard covers one label (`*.example.com` is not `a.b.example.com`,
        as certificates read it)."""
        domains = self.domains
        if not domains:
            return None
        found = domains.get(name)
        if found is None:
            _, dot, parent = name.partition(".")
            if dot:
                found = domains.get("*." + parent)
        return found

    def with_challenge(self, token: str, answer: str | None) -> Sites:
        challenges = dict(self.challenges)
        if answer is None:
            challenges.pop(token, None)
        else:
            challenges[check_token(token)] = answer
        return Sites(self.domains, self.redirects, challenges)

    def with_domains(self, domains: Mapping[str, Key], redirects: frozenset[Key]) -> Sites:
        return Sites(dict(domains), redirects, self.challenges)

    def as_json(self) -> dict[str, Any]:
        return {
            "domains": {name: list(key) for name, key in sorted(self.domains.items())},
            "redirects": sorted(list(key) for key in self.redirects),
            "challenges": dict(self.challenges),
        }

    @classmethod
    def from_json(cls, data: Any) -> Sites:
        """ValueError (or TypeError) on anything malformed: the admin API says so in one line."""
        if not data:
            return cls()
        domains: dict[str, Key] = {}
        for name, key in (data.get("domains") or {}).items():
            domains[check_domain(name)] = _key(key)
        redirects = frozenset(_key(key) for key in data.get("redirects") or [])
        challenges = {check_token(t): str(a) for t, a in (data.get("challenges") or {}).items()}
        return cls(domains, redirects, challenges)


def _key(value: Any) -> Key:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, str) and _LABEL.fullmatch(v) for v in value)
    ):
        raise ValueError(f"a domain's target must be [app, service], got {value!r}")
    return value[0], value[1]
