"""The router's admin API: a Starlette app the daemon serves on its unix socket.

All bodies are JSON; errors are `{"error": "<one line>"}`.

    GET    /health                          {"service", "pid", "url", "started", "domain",
                                             "workers"}
    GET    /routes                          {"routes": {app: {service: [backend, ...]}},
                                             "canaries": {app: {service: CANARY}}}
    GET    /routes/APP/SERVICE              {"backends": [...], "canary": CANARY or null};
                                            404 when not declared
    PUT    /routes/APP/SERVICE              {"backends": [...]}: replace the list
    POST   /routes/APP/SERVICE/declare      known with no backend yet (503, not 404)
    POST   /routes/APP/SERVICE/add          {"backend": "127.0.0.1:PORT"}
    POST   /routes/APP/SERVICE/remove       {"backend": "127.0.0.1:PORT"}
    DELETE /routes/APP                      forget every service of the app
    PUT    /routes/APP/SERVICE/canary       CANARY: {"backends": [...], "percent": 1..99};
                                            404 when the route is not declared
    DELETE /routes/APP/SERVICE/canary?keep=true|false
                                            end it: its backends join the ordinary ones
                                            (true) or leave the route (false)
    GET    /counters                        {"counters": {backend: {"classes": [1xx..5xx],
                                             "latency": [per bucket..., overflow]}},
                                             "bounds_ms": [...]}: every router process's,
                                            added up, cumulative since each started
    POST   /drained                         {"backend", "timeout"} -> {"drained": bool}
                                            long-polls until nothing is in flight on it
    GET    /sites                           {"domains": {NAME: [app, service]}, "redirects":
                                             [[app, service]], "challenges": {TOKEN: ANSWER}}
    PUT    /sites                           {"domains", "redirects"}: replace them (the
                                            challenges stay)
    PUT    /challenges/TOKEN                {"answer": KEY_AUTHORIZATION}: served on the HTTP
                                            port at /.well-known/acme-challenge/TOKEN
    DELETE /challenges/TOKEN
    GET    /certs                           {"https": URL or null, "certs": [{"name", "names",
                                             "issuer", "expires"}]}
    PUT    /certs/NAME                      {"cert": PEM, "key": PEM}: new connections get it
    DELETE /certs/NAME

Every change is saved to routes.json, then applied by every router process, before it is
acknowledged. Try it: `curl --unix-socket ~/.shipmate/router.sock http://router/routes`.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shipmate.common.latency import LATENCY_BOUNDS_MS
from shipmate.router.counters import Counters, merge
from shipmate.router.home import SavedTable
from shipmate.router.sites import Sites
from shipmate.router.table import RouteTable
from shipmate.router.tls import Certificates
from shipmate.router.workers import Workers

# A long poll on /drained never waits longer than this, whatever the caller asks.
MAX_DRAIN_WAIT = 600.0
# Largest admin request body: a routing change is a few hundred bytes.
MAX_ADMIN_BODY = 1 << 20
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise AdminError(400, f"invalid {what} name {value!r}")
    return value


def _field(body: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get(name), kind):
        raise AdminError(400, f"the body needs {name!r}")
    return body[name]


async def _body(request: Request) -> Any:
    if "chunked" in request.headers.get("transfer-encoding", "").lower():
        raise AdminError(411, "send a Content-Length")
    length = request.headers.get("content-length", "0")
    if length.isdigit() and int(length) > MAX_ADMIN_BODY:
        raise AdminError(413, "request body too large")
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise AdminError(400, "the body is not JSON") from None


class _JSON(JSONResponse):
    # As json.dumps writes it by default, as the hand-written admin server did.
    def render(self, content: Any) -> bytes:
        return json.dumps(content).encode()


def _endpoint(request: Request) -> str:
    query = request.url.query
    return f"{request.method} {request.url.path}" + (f"?{query}" if query else "")


class Admin:
    """Applies routing changes to the table, saves them and has every worker apply them."""

    def __init__(
        self,
        table: RouteTable,
        saved: SavedTable,
        health: dict[str, Any],
        workers: Workers,
        counters: Counters | None = None,
        certs: Certificates | None = None,
        save_certs: Any = None,
    ) -> None:
        self.table = table
        # None when the router has no HTTPS listener; `save_certs()` writes certs.json.
        self.certs = certs
        self.save_certs = save_certs
        self.saved = saved
        self.health = health
        self.workers = workers
        # The daemon's own router's counts; the workers' are asked for on every read.
        self.counters = counters or Counters()

    async def changed(self) -> None:
        # Saved, then applied by every worker, before the change is acknowledged.
        if self.saved.save():
            table = self.table
            await self.workers.sync(table.snapshot(), table.canaries(), table.sites)

    def app(self) -> Starlette:
        async def no_endpoint(request: Request, exc: Exception) -> JSONResponse:
            return _JSON({"error": f"no such admin endpoint: {_endpoint(request)}"}, 404)

        async def refused(request: Request, exc: Exception) -> JSONResponse:
            assert isinstance(exc, AdminError)
            return _JSON({"error": exc.message}, exc.status)

        async def failed(request: Request, exc: Exception) -> JSONResponse:
            if isinstance(exc, HTTPException):
                return _JSON({"error": str(exc.detail)}, exc.status_code)
            # Starlette raises it again after this answer, and uvicorn logs its traceback.
            return _JSON({"error": f"internal error: {exc}"}, 500)

        app = Starlette(
            routes=[
                Route("/health", self.get_health, methods=["GET"]),
                Route("/routes", self.get_routes, methods=["GET"]),
                Route("/drained", self.drained, methods=["POST"]),
                Route("/routes/{app}", self.remove_app, methods=["DELETE"]),
                Route("/routes/{app}/{service}", self.get_route, methods=["GET"]),
                Route("/routes/{app}/{service}", self.set_route, methods=["PUT"]),
                Route("/routes/{app}/{service}/canary", self.set_canary, methods=["PUT"]),
                Route("/routes/{app}/{service}/canary", self.end_canary, methods=["DELETE"]),
                Route("/counters", self.get_counters, methods=["GET"]),
                Route("/sites", self.get_sites, methods=["GET"]),
                Route("/sites", self.set_sites, methods=["PUT"]),
                Route("/challenges/{token}", self.set_challenge, methods=["PUT", "DELETE"]),
                Route("/certs", self.get_certs, methods=["GET"]),
                Route("/certs/{name}", self.set_cert, methods=["PUT", "DELETE"]),
                Route("/routes/{app}/{service}/{action}", self.change, methods=["POST"]),
            ],
            exception_handlers={
                404: no_endpoint,
                405: no_endpoint,
                AdminError: refused,
                HTTPException: failed,
                Exception: failed,
            },
        )
        app.router.redirect_slashes = False
        return app

    # --- endpoints -----------------------------------------------------------------------------

    async def get_health(self, request: Request) -> JSONResponse:
        return _JSON({**self.health, "workers": self.workers.pids})

    async def get_routes(self, request: Request) -> JSONResponse:
        return _JSON({"routes": self.table.snapshot(), "canaries": self.table.canaries()})

    async def get_counters(self, request: Request) -> JSONResponse:
        parts = [self.counters.as_json(), *await self.workers.counters()]
        return _JSON({"counters": merge(parts), "bounds_ms": list(LATENCY_BOUNDS_MS)})

    async def drained(self, request: Request) -> JSONResponse:
        body = await _body(request)
        backend = _field(body, "backend", str)
        timeout = min(float(_field(body, "timeout", (int, float))), MAX_DRAIN_WAIT)
        here, there = await asyncio.gather(
            self.table.wait_drained(backend, timeout), self.workers.drained(backend, timeout)
        )
        return _JSON({"drained": here and there})

    async def remove_app(self, request: Request) -> JSONResponse:
        self.table.remove_app(_name(request.path_params["app"], "app"))
        await self.changed()
        return _JSON({})

    def _key(self, request: Request) -> tuple[str, str]:
        params = request.path_params
        return _name(params["app"], "app"), _name(params["service"], "service")

    async def get_route(self, request: Request) -> JSONResponse:
        app, service = self._key(request)
        if not self.table.known(app, service):
            raise AdminError(404, f"no route for service {service} of app {app}")
        return _JSON(self._route(app, service))

    def _route(self, app: str, service: str) -> dict[str, Any]:
        canary = self.table.canary(app, service)
        group = None if canary is None else {"backends": list(canary[0]), "percent": canary[1]}
        return {"backends": self.table.backends(app, service), "canary": group}

    async def set_canary(self, request: Request) -> JSONResponse:
        app, service = self._key(request)
        body = await _body(request)
        backends = _field(body, "backends", list)
        if not all(isinstance(b, str) for b in backends):
            raise AdminError(400, "backends must be a list of HOST:PORT strings")
        percent = _field(body, "percent", int)
        if isinstance(percent, bool):
            raise AdminError(400, "the body needs 'percent'")
        return await self._apply(
            app, service, lambda: self.table.set_canary(app, service, backends, percent)
        )

    async def end_canary(self, request: Request) -> JSONResponse:
        app, service = self._key(request)
        await _body(request)  # read, so the connection stays in step
        keep = request.query_params.get("keep")
        if keep not in ("true", "false"):
            raise AdminError(400, "say keep=true or keep=false")
        if not self.table.known(app, service):
            raise AdminError(404, f"no route for service {service} of app {app}")
        return await self._apply(
            app, service, lambda: self.table.end_canary(app, service, keep == "true")
        )

    async def set_route(self, request: Request) -> JSONResponse:
        app, service = self._key(request)
        backends = _field(await _body(request), "backends", list)
        if not all(isinstance(b, str) for b in backends):
            raise AdminError(400, "backends must be a list of HOST:PORT strings")
        return await self._apply(
            app, service, lambda: self.table.set_backends(app, service, backends)
        )

    async def change(self, request: Request) -> JSONResponse:
        app, service = self._key(request)
        action = request.path_params["action"]
        table = self.table
        if action == "declare":
            await _body(request)  # read, so the connection stays in step

            def apply() -> None:
                if not table.known(app, service):
                    table.set_backends(app, service, ())

        elif action in ("add", "remove"):
            backend = _field(await _body(request), "backend", str)
            method = table.add_backend if action == "add" else table.remove_backend

            def apply() -> None:
                method(app, service, backend)

        else:
            raise AdminError(404, f"no such admin endpoint: {_endpoint(request)}")
        return await self._apply(app, service, apply)

    async def _apply(self, app: str, service: str, apply: Any) -> JSONResponse:
        try:
            apply()
        except ValueError as exc:
            raise AdminError(400, str(exc)) from None
        except KeyError as exc:
            raise AdminError(404, str(exc.args[0])) from None
        await self.changed()
        return _JSON(self._route(app, service))

    # --- sites and certificates ------------------------------------------------------------------

    async def get_sites(self, request: Request) -> JSONResponse:
        return _JSON(self.table.sites.as_json())

    async def set_sites(self, request: Request) -> JSONResponse:
        body = await _body(request)
        if not isinstance(body, dict):
            raise AdminError(400, "the body needs 'domains' and 'redirects'")
        try:
            given = Sites.from_json({**body, "challenges": {}})
        except (ValueError, TypeError, AttributeError) as exc:
            raise AdminError(400, str(exc)) from None
        table = self.table
        table.sites = table.sites.with_domains(given.domains, given.redirects)
        await self.changed()
        return _JSON(table.sites.as_json())

    async def set_challenge(self, request: Request) -> JSONResponse:
        token = request.path_params["token"]
        answer: str | None = None
        if request.method == "PUT":
            answer = _field(await _body(request), "answer", str)
        else:
            await _body(request)
        try:
            self.table.sites = self.table.sites.with_challenge(token, answer)
        except ValueError as exc:
            raise AdminError(400, str(exc)) from None
        await self.changed()
        return _JSON({})

    async def get_certs(self, request: Request) -> JSONResponse:
        certs = [] if self.certs is None else [i.as_json() for i in self.certs.info.values()]
        return _JSON({"https": self.health.get("https_url"), "certs": certs})

    async def set_cert(self, request: Request) -> JSONResponse:
        if self.certs is None:
            raise AdminError(
                409,
                "this router has no HTTPS listener: `shipmate rack stop --all`, then "
                "`shipmate rack start --router-https HOST:PORT`",
            )
        name = request.path_params["name"]
        if request.method == "DELETE":
            await _body(request)
            self.certs.remove(name)
            answer: dict[str, Any] = {}
        else:
            body = await _body(request)
            try:
                info = self.certs.put(name, _field(body, "cert", str), _field(body, "key", str))
            except ValueError as exc:
                raise AdminError(400, str(exc)) from None
            answer = info.as_json()
        if self.save_certs is not None:
            self.save_certs()
        return _JSON(answer)
