"""Custom domains: what a name may look like, `${VAR}` in a manifest's `domain:` expanded from
the release's environment (as convox.yml does), and which app may claim a name."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shipmate.domain.errors import Conflict, InvalidInput
from shipmate.domain.manifest_model import Manifest

_NAME = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def check_domain(name: str) -> str:
    """The name in lower case; InvalidInput saying what a name looks like otherwise."""
    clean = name.strip().lower().rstrip(".")
    if len(clean) > 253 or not _NAME.fullmatch(clean):
        raise InvalidInput(
            f"invalid domain {name!r}: use a host name such as www.example.com "
            "(or *.example.com for every name under it)"
        )
    return clean


def expand(template: str, env: Mapping[str, str], where: str) -> str:
    """`${HOST}` -> env["HOST"]; InvalidInput naming the key when the release lacks it."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in env:
            raise InvalidInput(f"{where} uses ${{{key}}}, which the release's env lacks: set it")
        return env[key]

    return _VAR.sub(value, template)


@dataclass(frozen=True)
class Claim:
    """One name an app answers to, on one of its services."""

    name: str
    app: str
    service: str
    source: str  # "manifest" (the active release's) or "manual" (`shipmate domains add`)


def manifest_claims(app: str, manifest: Manifest, env: Mapping[str, str]) -> list[Claim]:
    """The names the services of a release's manifest claim, expanded and checked."""
    claims: list[Claim] = []
    for service in manifest.services:
        for template in service.domains:
            where = f"services.{service.name}.domain"
            if service.port is None:
                raise InvalidInput(f"{where}: the service has no port, so nothing to route to")
            name = check_domain(expand(template, env, where))
            claims.append(Claim(name, app, service.name, "manifest"))
    return claims


def redirects(manifest: Manifest) -> set[str]:
    return {s.name for s in manifest.services if s.https_redirect}


def check_free(claims: Iterable[Claim], taken: Iterable[Claim]) -> None:
    """Conflict (one line) when a name is already another app's."""
    owners = {c.name: c for c in taken}
    for claim in claims:
        other = owners.get(claim.name)
        if other is not None and other.app != claim.app:
            raise Conflict(
                f"domain {claim.name} belongs to app {other.app}: remove it there first "
                f"(`shipmate domains remove {claim.name} -a {other.app}`)"
            )
