"""A running rack: state store, runtime, router and API in one process (wired by
shipmate.bootstrap)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from shipmate import lifecycle
from shipmate.api.app import create_api
from shipmate.api.auth import load_or_create_token
from shipmate.bootstrap import build_context
from shipmate.common.addresses import join_host_port, split_host_port
from shipmate.config import Settings
from shipmate.domain.errors import ShipmateError
from shipmate.router import lifecycle as router_daemon
from shipmate.router.home import Paths as RouterPaths
from shipmate.router.remote import RemoteRoutes
from shipmate.services import builds, domains, promotions
from shipmate.services.context import Context
from shipmate.web import console

log = logging.getLogger("shipmate.rack")


async def serve(settings: Settings, api_address: str, router_address: str) -> None:
    # The router is a daemon of its own (shipmate/router/daemon.py): adopted when one already
    # serves this SHIPMATE_HOME, so requests never stop while the rack restarts.
    router_paths = RouterPaths(settings.home)
    routes = RemoteRoutes(router_paths.socket)
    ctx = build_context(settings, routes=routes)
    token = load_or_create_token(settings.token_file)
    router, adopted = await asyncio.to_thread(
        router_daemon.ensure, router_paths, router_address, "localhost", settings.router_https
    )
    log.info(
        "router %s at %s (pid %d)", "adopted" if adopted else "started", router.url, router.pid
    )
    ctx.router_url = router.url
    ctx.router_https_url = router.https_url
    ctx.sites = routes
    api_host, api_port = split_host_port(api_address, any_port=True)
    # Our own socket, so that port 0 works and rack.json names the port actually bound.
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every small response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(
        socket.AF_INET6 if ":" in api_host else socket.AF_INET,
        socket.SOCK_STREAM,
        socket.IPPROTO_TCP,
    )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((api_host, api_port))
    except OSError as exc:
        if not adopted:
            await asyncio.to_thread(router_daemon.stop, router_paths)
        raise ShipmateError(f"cannot listen on {api_address} for the API: {exc.strerror}") from None
    api_port = sock.getsockname()[1]
    api = create_api(ctx, token)
    console.install(api)
    config = uvicorn.Config(
        api,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=5,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    stop = _Stop(settings, ctx, api, server)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.signalled)
    builds.fail_unfinished(ctx)
    recovery = ctx.spawn(promotions.recover(ctx))
    ctx.spawn(router_daemon.supervise(router_paths, router.url, https_url=router.https_url))
    ctx.spawn(_keep_sites(ctx))
    if settings.acme_directory:
        ctx.spawn(_acme(ctx, settings, routes))
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    if server.started:
        scheme = "https" if settings.tls_cert else "http"
        api_url = f"{scheme}://{join_host_port(api_host, api_port)}"
        _write_rack_file(settings, api_url, router.url, router.https_url)
    try:
        await serving
    finally:
        stop.cancel()
        settings.rack_file.unlink(missing_ok=True)
        recovery.cancel()
        for task in list(ctx.tasks):
            task.cancel()
        await asyncio.gather(*ctx.tasks, return_exceptions=True)
        await ctx.runtime.shutdown()
        await routes.aclose()
        ctx.store.close()
        if not adopted and not server.started:
            # This start failed: leave no router behind that nothing will stop.
            await asyncio.to_thread(router_daemon.stop, router_paths)


# How often the router's domains and certificates are checked against the store.
SITES_INTERVAL = 1.0


async def _keep_sites(ctx: Context) -> None:
    """Level-triggered: whatever activated a release or changed a domain, the router's sites
    follow within a second (services/domains.py sends only what changed)."""
    while True:
        try:
            await domains.sync(ctx)
        except Exception as exc:
            log.warning("domains: cannot update the router: %s", exc)
        await asyncio.sleep(SITES_INTERVAL)


async def _acme(ctx: Context, settings: Settings, routes: RemoteRoutes) -> None:
    """Certificates by ACME for every claimed domain, renewed 30 days before expiry."""
    from shipmate.acme.issue import Issued, Issuer
    from shipmate.acme.renewal import Renewer

    assert settings.acme_directory is not None
    issuer = Issuer(settings.acme_directory, settings.acme_email, settings.home / "acme.json")

    async def saved(name: str, issued: Issued) -> None:
        await asyncio.to_thread(domains.store_issued, ctx, name, issued.cert_pem, issued.key_pem)

    def event(obj: str, message: str) -> None:
        domains.cert_event(ctx, obj, message)

    async def names() -> list[str]:
        return await asyncio.to_thread(domains.claimed_names, ctx)

    renewer = Renewer(issuer, routes, event, saved=saved)
    await renewer.run(names, interval=ACME_INTERVAL)


ACME_INTERVAL = 5.0


class _Server(uvicorn.Server):
    # uvicorn's serve() takes SIGTERM and SIGINT for itself and stops serving at once; the
    # rack's own handlers (_Stop) decide when the API stops.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _Stop:
    """SIGTERM (or Ctrl-C): a graceful stop. New promotions and builds are refused at once
    while the API goes on answering; the promotions and builds running are waited for (up to
    the bound `rack stop --timeout` asked, STOP_WAIT for a plain SIGTERM), so the clients
    following them see them end; then the API stops. `rack stop --force`, or a second
    signal, interrupts them: the next start reverts an interrupted promotion."""

    def __init__(
        self, settings: Settings, ctx: Context, api: FastAPI, server: uvicorn.Server
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self.api = api
        self.server = server
        self.task: asyncio.Task[None] | None = None

    def signalled(self) -> None:
        if self.api.state.stopping:
            # Whatever it asks (`rack stop --force` during a graceful stop, Ctrl-C again),
            # a second signal interrupts.
            lifecycle.read_stop_request(self.settings, os.getpid())
            log.warning("stopping: interrupting what runs (a second signal)")
            self.server.should_exit = True
            return
        timeout, force = lifecycle.read_stop_request(self.settings, os.getpid())
        self.api.state.stopping = True
        if force:
            log.info("stopping (--force): interrupting the promotions and builds running")
            self.server.should_exit = True
            return
        self.task = asyncio.get_running_loop().create_task(self._wait(timeout))

    async def _wait(self, timeout: float) -> None:
        try:
            await self._wait_for_work(timeout)
        except Exception:
            log.exception("stopping: cannot tell what runs; stopping now")
        finally:
            # Whatever happened to the wait, the rack stops.
            self.server.should_exit = True

    async def _wait_for_work(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen: set[lifecycle.Work] = set()
        while work := self._running():
            for item in work:
                if item not in seen:
                    seen.add(item)
                    log.info("stopping: waiting for %s to finish (up to %gs)", item, timeout)
            if time.monotonic() >= deadline:
                log.warning(
                    "stopping: %s did not finish within %gs: interrupted (the next start "
                    "reverts an interrupted promotion)",
                    ", ".join(str(item) for item in work),
                    timeout,
                )
                return
            await self.ctx.notifier.wait(min(0.5, max(deadline - time.monotonic(), 0.01)))

    def _running(self) -> list[lifecycle.Work]:
        with self.ctx.store.unit_of_work() as uow:
            return lifecycle.unfinished_work(uow)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


def _write_rack_file(
    settings: Settings, api_url: str, router_url: str, router_https: str | None = None
) -> None:
    data: dict[str, object] = {"api": api_url, "router": router_url, "pid": os.getpid()}
    if router_https:
        data["router_https"] = router_https
    tmp = settings.rack_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(settings.rack_file)


def run(settings: Settings, api_address: str, router_address: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # httpx logs every request at INFO: health checks and router calls would fill rack.log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, api_address, router_address))
