"""Custom domains and certificates: claiming names for an app's services, importing
certificates, and keeping the router's sites (name -> app and service, redirects) and
certificates in line with the store.

A name is claimed by hand (`shipmate domains add`, stored) or by the manifest of an app's
active release (`services.web.domain`, expanded from that release's env). The router is
told the whole of it by `sync`, which the rack also runs every second (level-triggered: a
promotion that activates a release with new names needs no hook of its own, and a router
restarted from nothing is filled again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shipmate.domain.certs import covers, read_cert
from shipmate.domain.certs import status as cert_status
from shipmate.domain.domains import (
    Claim,
    check_domain,
    check_free,
    manifest_claims,
    redirects,
)
from shipmate.domain.errors import InvalidInput, NotFound, ShipmateError
from shipmate.domain.humanize import utcnow
from shipmate.services import audit
from shipmate.services.context import Context
from shipmate.services.ports import UnitOfWork
from shipmate.structs import Release

log = logging.getLogger("shipmate.domains")


class SitesPort(Protocol):
    """The router as these use cases see it (the router daemon's admin client)."""

    async def set_sites(
        self, domains: dict[str, tuple[str, str]], redirects: list[tuple[str, str]]
    ) -> None: ...

    async def put_cert(self, name: str, cert_pem: str, key_pem: str) -> dict[str, Any]: ...

    async def certs(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class CertRow:
    domain: str
    issuer: str
    expires: datetime
    status: str
    source: str


def _manifest_of(release: Release) -> Any:
    from shipmate.services.promotions import manifest_of  # promotions imports this module

    return manifest_of(release)


def active_claims(uow: UnitOfWork) -> tuple[list[Claim], set[tuple[str, str]]]:
    """Every claimed name (by hand, then the active releases' manifests) and the (app,
    service) pairs that redirect to HTTPS."""
    claims = [Claim(d.name, d.app, d.service, "manual") for d in uow.domains.list()]
    redirect: set[tuple[str, str]] = set()
    for app in uow.apps.list():
        if app.release_id is None:
            continue
        try:
            release = uow.releases.get(app.name, app.release_id)
            manifest = _manifest_of(release)
            claims += manifest_claims(app.name, manifest, release.env)
        except ShipmateError as exc:
            # An active release whose domains cannot be read was promoted before they
            # existed or has lost its build: it routes by its rack name still.
            log.warning("domains: app %s: %s", app.name, exc)
            continue
        redirect |= {(app.name, service) for service in redirects(manifest)}
    return claims, redirect


def check_release(uow: UnitOfWork, release: Release) -> None:
    """Refuse (before anything changes) a release whose manifest claims a name another app
    has, or whose `domain:` cannot be expanded from its env."""
    claims = manifest_claims(release.app, _manifest_of(release), release.env)
    if claims:
        taken, _ = active_claims(uow)
        check_free(claims, taken)


def list_domains(ctx: Context, app: str) -> list[Claim]:
    with ctx.store.unit_of_work() as uow:
        uow.apps.get(app)
        claims, _ = active_claims(uow)
    return sorted((c for c in claims if c.app == app), key=lambda c: c.name)


def _routed_services(uow: UnitOfWork, app: str) -> list[str]:
    found = uow.apps.get(app)
    if found.release_id is None:
        return []
    manifest = _manifest_of(uow.releases.get(app, found.release_id))
    return [s.name for s in manifest.services if s.port is not None]


async def add_domain(ctx: Context, app: str, name: str, service: str | None) -> Claim:
    name = check_domain(name)
    with ctx.store.unit_of_work() as uow:
        uow.apps.lock(app)
        routed = _routed_services(uow, app)
        if service is None:
            if len(routed) > 1:
                raise InvalidInput(
                    f"app {app} routes {', '.join(routed)}: say which with --service"
                )
            service = routed[0] if routed else "web"
        elif routed and service not in routed:
            raise InvalidInput(
                f"app {app} has no routed service {service} (routed: {', '.join(routed)})"
            )
        taken, _ = active_claims(uow)
        claim = Claim(name, app, service, "manual")
        check_free([claim], taken)
        if any(c.name == name for c in taken):
            raise InvalidInput(f"domain {name} is app {app}'s already")
        uow.domains.add(name, app, service)
        audit.record(uow, "domain.add", app, name, service)
    await sync(ctx)
    return claim


async def remove_domain(ctx: Context, app: str, name: str) -> None:
    name = check_domain(name)
    with ctx.store.unit_of_work() as uow:
        uow.apps.lock(app)
        found = uow.domains.find(name)
        if found is None or found.app != app:
            claims, _ = active_claims(uow)
            if any(c.name == name and c.app == app for c in claims):
                raise InvalidInput(
                    f"domain {name} comes from the manifest's `domain:`: remove it there and deploy"
                )
            raise NotFound(f"app {app} has no domain {name}")
        uow.domains.remove(name)
        audit.record(uow, "domain.remove", app, name)
    await sync(ctx)


async def import_cert(ctx: Context, name: str, cert_pem: str, key_pem: str) -> CertRow:
    name = check_domain(name)
    facts = read_cert(cert_pem, key_pem)
    if not covers(facts.names, name):
        raise InvalidInput(
            f"the certificate is for {', '.join(facts.names) or 'no name'}, not {name}"
        )
    # The router refuses what it cannot serve before the store keeps anything.
    router = _router(ctx)
    try:
        await router.put_cert(name, cert_pem, key_pem)
    except ShipmateError:
        raise
    except Exception as exc:  # the router's one-line refusal (RouterError)
        raise InvalidInput(str(exc)) from None
    with ctx.store.unit_of_work() as uow:
        uow.certs.put(name, cert_pem, key_pem, facts.issuer, facts.not_after, "import")
        audit.record(uow, "cert.import", None, name, facts.issuer)
    state = cert_status(facts.not_after, utcnow())
    return CertRow(name, facts.issuer, facts.not_after, state, "import")


def list_certs(ctx: Context) -> list[CertRow]:
    now = utcnow()
    with ctx.store.unit_of_work() as uow:
        certs = uow.certs.list()
    return [
        CertRow(c.name, c.issuer, c.not_after, cert_status(c.not_after, now), c.source)
        for c in certs
    ]


def _router(ctx: Context) -> SitesPort:
    sites: SitesPort | None = ctx.sites
    if sites is None:
        raise InvalidInput("this rack's router takes no domains or certificates")
    return sites


async def sync(ctx: Context) -> None:
    """Tell the router every name and redirect, and every stored certificate it lacks or has
    in another version. Idempotent; what did not change is not sent again."""
    sites: SitesPort | None = ctx.sites
    if sites is None:
        return
    with ctx.store.unit_of_work() as uow:
        claims, redirect = active_claims(uow)
        certs = uow.certs.list()
    # A name claimed twice (a manual claim beside another app's manifest) goes to the first.
    domains: dict[str, tuple[str, str]] = {}
    for claim in claims:
        domains.setdefault(claim.name, (claim.app, claim.service))
    state = (sorted(domains.items()), sorted(redirect))
    if ctx.sites_sent != state:
        await sites.set_sites(domains, sorted(redirect))
        ctx.sites_sent = state
    served = await sites.certs()
    if served.get("https") is None:
        return
    have = {c["name"]: c["expires"] for c in served.get("certs") or []}
    for cert in certs:
        expires = cert.not_after.isoformat().replace("+00:00", "Z")
        if have.get(cert.name, "")[:19] != expires[:19]:
            await sites.put_cert(cert.name, cert.cert_pem, cert.key_pem)


# --- what the rack's ACME renewal (shipmate.acme.renewal) is wired to ---------------------------


def claimed_names(ctx: Context) -> list[str]:
    with ctx.store.unit_of_work() as uow:
        claims, _ = active_claims(uow)
    return sorted({c.name for c in claims})


def cert_event(ctx: Context, obj: str, message: str) -> None:
    """`system/router/cert/NAME MESSAGE`, in the log of the app that claims NAME."""
    name = obj.rpartition("/")[2]
    with ctx.store.unit_of_work() as uow:
        claims, _ = active_claims(uow)
        owner = next((c.app for c in claims if c.name == name), None)
        if owner is not None:
            # The renewer names it `router/cert/NAME`; the source is `system/router/...`.
            uow.events.add(owner, "router", obj.removeprefix("router/"), message, None)
    log.info("system/router/%s %s", obj, message)
    ctx.notifier.notify()


def store_issued(ctx: Context, name: str, cert_pem: str, key_pem: str) -> None:
    facts = read_cert(cert_pem, key_pem)
    with ctx.store.unit_of_work() as uow:
        uow.certs.put(name, cert_pem, key_pem, facts.issuer, facts.not_after, "acme")
