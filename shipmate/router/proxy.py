"""The router: the HTTP front door that sends each request to a process of an app.

`<service>.<app>.localhost` names the destination; the RouteTable says which processes
currently serve it. A plain asyncio server speaks HTTP/1.1 on both sides (http1.py, heads
parsed by httptools) with one pool of kept-alive connections per process (upstream.py): no
framework sits between the sockets, because the router's own overhead is what users wait for
on every request and what is benchmarked against HAProxy.

Every connection starts on the fast path (fast.py) and moves to the stream path (stream.py)
for whatever the fast path does not relay itself; both use the rules of gateway.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

from shipmate.common.addresses import join_host_port
from shipmate.router.fast import FastPath
from shipmate.router.gateway import Gateway, parse_host
from shipmate.router.stream import StreamPath
from shipmate.router.table import RouteTable

__all__ = ["Router", "parse_host"]

# How often idle connections and deadlines are checked.
SWEEP_INTERVAL = 1.0


class Router:
    def __init__(
        self,
        table: RouteTable,
        host: str = "127.0.0.1",
        port: int = 7080,
        domain: str = "localhost",
        *,
        read_timeout: float = 60.0,
        connect_timeout: float = 5.0,
        keepalive_timeout: float = 75.0,
        reuse_port: bool = False,
        https: tuple[str, int, ssl.SSLContext] | None = None,
    ) -> None:
        self.table = table
        self.host = host
        self.port = port
        # Several router processes share the port (SO_REUSEPORT; see workers.py).
        self.reuse_port = reuse_port
        self.gateway = Gateway(
            table,
            domain,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
            keepalive_timeout=keepalive_timeout,
            https_port=None if https is None else https[1],
        )
        self.streams = StreamPath(self.gateway)
        self.fast = FastPath(self.gateway, self.streams)
        # The HTTPS listener (host, port, context whose SNI callback picks the certificate):
        # the same gateway, so one table, one pool and one set of counters for both.
        self.https = https
        self.fast_tls = FastPath(self.gateway, self.streams, secure=True)
        self._tls_server: asyncio.Server | None = None
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def domain(self) -> str:
        return self.gateway.domain

    @property
    def url(self) -> str:
        return "http://" + join_host_port(self.host, self.port)

    @property
    def https_url(self) -> str | None:
        if self.https is None:
            return None
        return "https://" + join_host_port(self.https[0], self.https[1])

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        self.gateway.stopping = False
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.fast.protocol,
            self.host,
            self.port,
            backlog=1024,
            reuse_port=self.reuse_port or None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if self.https is not None:
            host, port, context = self.https
            try:
                self._tls_server = await loop.create_server(
                    self.fast_tls.protocol,
                    host,
                    port,
                    backlog=1024,
                    ssl=context,
                    ssl_handshake_timeout=10.0,
                )
            except OSError:
                self._server.close()
                self._server = None
                raise
            port = self._tls_server.sockets[0].getsockname()[1]
            self.https = host, port, context
            self.gateway.https_port = port
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening, close idle client connections, give exchanges in progress up to
        `grace` seconds to finish, then close everything."""
        self.gateway.stopping = True
        servers = [s for s in (self._server, self._tls_server) if s is not None]
        for server in servers:
            server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self.fast.close_idle()
        self.fast_tls.close_idle()
        await self.streams.stop(grace)
        # Fast-path exchanges in progress close their connection when they finish.
        while (self.fast.clients or self.fast_tls.clients) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        self.fast.abort()
        self.fast_tls.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self.gateway.pool.close()
        for server in servers:
            await server.wait_closed()
        self._server = self._tls_server = None

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.gateway.pool.sweep()
            now = time.monotonic()
            self.fast.check(now)
            self.fast_tls.check(now)
            self.gateway.counters.prune(now, self.table.routed)
