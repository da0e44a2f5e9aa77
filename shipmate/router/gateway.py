"""What the router's two paths share: where a request goes (route lookup), what it looks like
on its way there and back (header rewriting), what the client gets when it cannot go anywhere
(the router's own error pages), the connections to app processes (one pool) and the counts
of their responses.

The fast path (fast.py) and the stream path (stream.py) both hold the one `Gateway` of their
router and use it through the public names below.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from shipmate.router.counters import Counters
from shipmate.router.http1 import (
    BODY_CHUNKED,
    BODY_EOF,
    BODY_NONE,
    HOP_BY_HOP,
    Request,
    Response,
    build_head,
)
from shipmate.router.sites import CHALLENGE_PREFIX, Sites
from shipmate.router.table import RouteTable
from shipmate.router.upstream import Pool

# The router sets these itself; values from clients would let them spoof their origin.
_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto"})
_LABEL = re.compile(r"[a-z0-9][a-z0-9_-]*")
_MISSING: object = object()


def parse_host(host_header: str, domain: str = "localhost") -> tuple[str, str] | None:
    """ "web.myapp.localhost:7080" -> ("web", "myapp"), i.e. (service, app); else None."""
    host = host_header.strip().lower()
    name, _, port = host.partition(":")
    if port and not port.isdigit():
        return None
    suffix = "." + domain.lower().strip(".")
    name = name.rstrip(".")  # a fully qualified "web.myapp.localhost." is the same host
    if not name.endswith(suffix):
        return None
    labels = name[: -len(suffix)].split(".")
    if len(labels) != 2:
        return None
    service, app = labels
    if not _LABEL.fullmatch(service) or not _LABEL.fullmatch(app):
        return None
    return service, app


class Gateway:
    """The routing table, the pool and the router's settings, with the rules both paths
    apply to every request."""

    def __init__(
        self,
        table: RouteTable,
        domain: str = "localhost",
        *,
        read_timeout: float = 60.0,
        connect_timeout: float = 5.0,
        keepalive_timeout: float = 75.0,
        https_port: int | None = None,
    ) -> None:
        self.table = table
        # Where plain HTTP is sent on for a service with `https: redirect` (None: no HTTPS).
        self.https_port = https_port
        self.domain = domain.lower().strip(".")
        self.read_timeout = read_timeout
        self.keepalive_timeout = keepalive_timeout
        self.pool = Pool(connect_timeout=connect_timeout)
        # Responses per backend (counters.py), counted by both paths on this router's loop.
        self.counters = Counters()
        # Set when the router stops: no connection is kept alive past its current exchange.
        self.stopping = False
        # Host header -> parse_host result; hosts repeat, parsing them on every request is waste.
        self._routes: dict[bytes, tuple[str, str] | None] = {}
        # The sites the cache was filled from: a new version of them empties it.
        self._sites: Sites = table.sites

    # --- route lookup --------------------------------------------------------------------------

    def route(self, host: bytes) -> tuple[str, str] | None:
        """(service, app) named by a Host header, or None when it names none."""
        sites = self.table.sites
        if sites is not self._sites:
            self._sites = sites
            self._routes = {}
        route = self._routes.get(host, _MISSING)
        if route is _MISSING:
            text = host.decode("latin-1")
            route = parse_host(text, self.domain)
            if route is None:
                found = sites.lookup(_hostname(text))
                route = None if found is None else (found[1], found[0])
            if len(self._routes) >= 4096:
                self._routes.clear()
            self._routes[host] = route
        return route  # type: ignore[return-value]

    def candidates(self, host: bytes) -> tuple[str, ...] | None:
        """The processes to try for `host`, in order; None when no route is known."""
        route = self.route(host)
        return None if route is None else self.table.candidates(route[1], route[0])

    def not_found(self, req: Request) -> str:
        host = req.host.decode("latin-1")[:200] or "(no Host header)"
        route = self.route(req.host)
        services = self.table.snapshot().get(route[1]) if route is not None else None
        if route is None or not services:
            return f"no app at {host}; use <service>.<app>.{self.domain}"
        # The form is right and the app is here: what is missing is the service's route.
        service, app = route
        routed = ", ".join(sorted(services))
        return (
            f"app {app} has no routed service {service}: only a service with a port "
            f"(`port:` in its manifest) gets a route (routed here: {routed})"
        )

    # --- header rewriting ----------------------------------------------------------------------

    def special(self, req: Request) -> tuple[bytes, bool] | None:
        """The router's own answer to a plain HTTP request, when it has one: an ACME HTTP-01
        key authorization, or a redirect to HTTPS. Call only while `table.sites.active`."""
        sites = self.table.sites
        target = req.target
        # A body is not read: the connection closes after the answer instead.
        keep = req.keep_alive and req.body == BODY_NONE and not self.stopping
        if sites.challenges and target.startswith(CHALLENGE_PREFIX):
            token = target[len(CHALLENGE_PREFIX) :].decode("latin-1")
            answer = sites.challenges.get(token)
            if answer is not None:
                return self.answer(200, [], answer.encode(), keep=keep, request=req), keep
        if not sites.redirects or self.https_port is None:
            return None
        name = _hostname(req.host.decode("latin-1"))
        found = sites.lookup(name)
        if found is None or found not in sites.redirects:
            return None
        port = b"" if self.https_port == 443 else b":%d" % self.https_port
        location = b"https://" + name.encode() + port + (target if target[:1] == b"/" else b"/")
        # 301 for what browsers follow; 308 keeps the method and body of anything else.
        status = 301 if req.method in (b"GET", b"HEAD") else 308
        body = b"Moved to " + location + b"\n"
        data = self.answer(status, [b"Location: " + location], body, keep=keep, request=req)
        return data, keep

    def upstream_head(self, req: Request, client_ip: bytes, secure: bool = False) -> bytes:
        """The head a process gets for `req`: hop-by-hop headers dropped, X-Forwarded-* set."""
        drop = req.connection_tokens
        lines = [b"Host: " + req.host]
        forwarded_for: list[bytes] = []
        for name, value, line in req.headers:
            if name in HOP_BY_HOP or name in drop or name == b"host":
                continue
            if name in _FORWARDED:
                if name == b"x-forwarded-for":
                    forwarded_for.append(value)
                continue
            if name == b"expect" and req.expect_continue:
                continue
            lines.append(line)
        forwarded_for.append(client_ip)
        lines.append(b"X-Forwarded-For: " + b", ".join(forwarded_for))
        lines.append(b"X-Forwarded-Host: " + req.host)
        lines.append(b"X-Forwarded-Proto: https" if secure else b"X-Forwarded-Proto: http")
        if req.body == BODY_CHUNKED:
            lines.append(b"Transfer-Encoding: chunked")
        if req.upgrade is not None:
            lines.append(b"Connection: Upgrade")
            lines.append(b"Upgrade: " + req.upgrade)
        return build_head(req.method + b" " + req.target + b" HTTP/1.1", lines)

    def response_head(self, req: Request, resp: Response, kind: int) -> tuple[bytes, bool]:
        """The head the client gets for `resp`, and whether its connection stays open."""
        keep = req.keep_alive and not self.stopping
        drop = resp.connection_tokens
        framed = kind in (BODY_CHUNKED, BODY_EOF)
        lines = [
            line
            for name, _, line in resp.headers
            if name not in HOP_BY_HOP
            and name not in drop
            and not (framed and name == b"content-length")
        ]
        if framed:
            if req.version == b"HTTP/1.1":
                lines.append(b"Transfer-Encoding: chunked")
            else:
                keep = False  # an HTTP/1.0 client can only see the end as a close
        if not keep:
            lines.append(b"Connection: close")
        elif req.version == b"HTTP/1.0":
            lines.append(b"Connection: keep-alive")
        return build_head(b"HTTP/1.1 " + resp.status_line_rest, lines), keep

    def upgrade_head(self, resp: Response) -> bytes:
        """The head of a 101 the client gets (the tunnel starts after it)."""
        upgrade = next((value for name, value, _ in resp.headers if name == b"upgrade"), b"")
        drop = resp.connection_tokens
        lines = [
            line for name, _, line in resp.headers if name not in HOP_BY_HOP and name not in drop
        ]
        lines += [b"Connection: Upgrade", b"Upgrade: " + upgrade]
        return build_head(b"HTTP/1.1 " + resp.status_line_rest, lines)

    # --- error pages ---------------------------------------------------------------------------

    def page(
        self, status: int, message: str, *, keep: bool, request: Request | None = None
    ) -> tuple[bytes, bool]:
        """An error page of the router's own, and whether the connection stays open."""
        body = f"shipmate router: {message}\n".encode()
        data = self.answer(status, [], body, keep=keep, request=request)
        return data, keep and not self.stopping

    def answer(
        self, status: int, extra: list[bytes], body: bytes, *, keep: bool, request: Request | None
    ) -> bytes:
        """A whole plain-text response of the router's own."""
        keep = keep and not self.stopping
        lines = [b"Content-Type: text/plain; charset=utf-8", b"Content-Length: %d" % len(body)]
        lines += extra
        if not keep:
            lines.append(b"Connection: close")
        elif request is not None and request.version == b"HTTP/1.0":
            lines.append(b"Connection: keep-alive")
        phrase = HTTPStatus(status).phrase.encode()
        data = build_head(b"HTTP/1.1 %d %b" % (status, phrase), lines)
        if request is None or request.method != b"HEAD":
            data += body
        return data


def _hostname(host: str) -> str:
    """A Host header's name: lower case, no port, no trailing dot."""
    name = host.strip().lower()
    if name.startswith("["):
        return name  # an IPv6 literal names no domain
    return name.partition(":")[0].rstrip(".")
