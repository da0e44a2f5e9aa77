"""The router as a process of its own: `python -m shipmate.router`.

It outlives the rack, so requests keep flowing while the API process is stopped, killed or
restarting. The rack changes routing through a small admin API (JSON over HTTP on the unix
socket SHIPMATE_HOME/router.sock, mode 0600); every change is written to
SHIPMATE_HOME/routes.json before it is acknowledged, so a restarted router serves the last
table at once, before any rack has spoken to it.

Admin API (all bodies JSON; errors are `{"error": "<one line>"}`):

    GET    /health                          {"service", "pid", "url", "started", "domain"}
    GET    /routes                          {"routes": {app: {service: [backend, ...]}}}
    GET    /routes/APP/SERVICE              {"backends": [...]}; 404 when not declared
    PUT    /routes/APP/SERVICE              {"backends": [...]}: replace the list
    POST   /routes/APP/SERVICE/declare      known with no backend yet (503, not 404)
    POST   /routes/APP/SERVICE/add          {"backend": "127.0.0.1:PORT"}
    POST   /routes/APP/SERVICE/remove       {"backend": "127.0.0.1:PORT"}
    DELETE /routes/APP                      forget every service of the app
    POST   /drained                         {"backend", "timeout"} -> {"drained": bool}
                                            long-polls until nothing is in flight on it

Try it: `curl --unix-socket ~/.shipmate/router.sock http://router/routes`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from shipmate.router.http1 import (
    BODY_CHUNKED,
    BODY_LENGTH,
    HEAD_END,
    MAX_HEAD,
    ProtocolError,
    RelayError,
    parse_request,
    read_exactly,
)
from shipmate.router.proxy import Router
from shipmate.router.table import RouteTable
from shipmate.router.workers import Workers, default_count

log = logging.getLogger("shipmate.router")

SERVICE = "shipmate-router"
# A long poll on /drained never waits longer than this, whatever the caller asks.
MAX_DRAIN_WAIT = 600.0
# Largest admin request body: a routing change is a few hundred bytes.
MAX_ADMIN_BODY = 1 << 20
ADMIN_IDLE = 300.0
# How often the daemon checks that router.json still names it.
DISOWNED_CHECK = 5.0
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True)
class Paths:
    """Where a router keeps its files under SHIPMATE_HOME."""

    home: Path

    @property
    def socket(self) -> Path:
        return self.home / "router.sock"

    @property
    def info(self) -> Path:
        return self.home / "router.json"

    @property
    def routes(self) -> Path:
        return self.home / "routes.json"

    @property
    def log(self) -> Path:
        return self.home / "router.log"


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a half-written one, even after a crash."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_table(path: Path) -> RouteTable:
    table = RouteTable()
    try:
        data = json.loads(path.read_text())
        routes = data["routes"]
        for app, services in routes.items():
            for service, backends in services.items():
                table.set_backends(app, service, backends)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # Serving nothing beats not serving at all: the rack declares every route again.
        bad = path.with_name(path.name + ".bad")
        log.error("router: cannot read %s (%s); starting empty, kept it as %s", path, exc, bad)
        with contextlib.suppress(OSError):
            os.replace(path, bad)
        table = RouteTable()
    return table


def _name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise AdminError(400, f"invalid {what} name {value!r}")
    return value


class Admin:
    """The admin API: applies routing changes to the table and persists them."""

    def __init__(
        self, table: RouteTable, paths: Paths, health: dict[str, Any], workers: Workers
    ) -> None:
        self.table = table
        self.paths = paths
        self.health = health
        self.workers = workers
        self._saved: str | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    def persist(self) -> bool:
        """Write the table to routes.json; False when it had not changed."""
        text = json.dumps({"version": 1, "routes": self.table.snapshot()}, indent=1)
        if text == self._saved:
            return False
        write_atomically(self.paths.routes, text + "\n")
        self._saved = text
        return True

    async def changed(self) -> None:
        # Saved, then applied by every worker, before the change is acknowledged.
        if self.persist():
            await self.workers.sync(self.table.snapshot())

    async def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("?", 1)[0].split("/") if p]
        if parts == ["health"] and method == "GET":
            return 200, {**self.health, "workers": self.workers.pids}
        if parts == ["routes"] and method == "GET":
            return 200, {"routes": self.table.snapshot()}
        if parts == ["drained"] and method == "POST":
            backend = _field(body, "backend", str)
            timeout = min(float(_field(body, "timeout", (int, float))), MAX_DRAIN_WAIT)
            here, there = await asyncio.gather(
                self.table.wait_drained(backend, timeout), self.workers.drained(backend, timeout)
            )
            return 200, {"drained": here and there}
        if len(parts) == 2 and parts[0] == "routes" and method == "DELETE":
            self.table.remove_app(_name(parts[1], "app"))
            await self.changed()
            return 200, {}
        if len(parts) in (3, 4) and parts[0] == "routes":
            app, service = _name(parts[1], "app"), _name(parts[2], "service")
            action = (method, parts[3] if len(parts) == 4 else "")
            try:
                if action == ("GET", ""):
                    if not self.table.known(app, service):
                        raise AdminError(404, f"no route for service {service} of app {app}")
                    return 200, {"backends": self.table.backends(app, service)}
                if action == ("PUT", ""):
                    backends = _field(body, "backends", list)
                    if not all(isinstance(b, str) for b in backends):
                        raise AdminError(400, "backends must be a list of HOST:PORT strings")
                    self.table.set_backends(app, service, backends)
                elif action == ("POST", "declare"):
                    if not self.table.known(app, service):
                        self.table.set_backends(app, service, ())
                elif action == ("POST", "add"):
                    self.table.add_backend(app, service, _field(body, "backend", str))
                elif action == ("POST", "remove"):
                    self.table.remove_backend(app, service, _field(body, "backend", str))
                else:
                    raise AdminError(404, f"no such admin endpoint: {method} {path}")
            except ValueError as exc:
                raise AdminError(400, str(exc)) from None
            await self.changed()
            return 200, {"backends": self.table.backends(app, service)}
        raise AdminError(404, f"no such admin endpoint: {method} {path}")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    async with asyncio.timeout(ADMIN_IDLE):
                        head = await reader.readuntil(HEAD_END)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                    return
                keep = True
                try:
                    req = parse_request(head)
                    keep = req.keep_alive
                    raw = b""
                    if req.body == BODY_CHUNKED:
                        raise AdminError(411, "send a Content-Length")
                    if req.body == BODY_LENGTH:
                        if req.length > MAX_ADMIN_BODY:
                            raise AdminError(413, "request body too large")
                        raw = await read_exactly(reader, req.length, "client", 30.0)
                    try:
                        body = json.loads(raw) if raw else None
                    except ValueError:
                        raise AdminError(400, "the body is not JSON") from None
                    status, answer = await self.handle(
                        req.method.decode("latin-1"), req.target.decode("latin-1"), body
                    )
                except ProtocolError as exc:
                    status, answer, keep = exc.status, {"error": exc.reason}, False
                except AdminError as exc:
                    status, answer = exc.status, {"error": exc.message}
                except RelayError:
                    return
                except Exception as exc:
                    log.exception("router: admin request failed")
                    status, answer = 500, {"error": f"internal error: {exc}"}
                data = json.dumps(answer).encode()
                phrase = HTTPStatus(status).phrase
                head_out = (
                    f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n"
                    + ("" if keep else "Connection: close\r\n")
                    + "\r\n"
                )
                writer.write(head_out.encode() + data)
                await writer.drain()
                if not keep:
                    return
        except OSError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def close(self) -> None:
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)


def _field(body: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get(name), kind):
        raise AdminError(400, f"the body needs {name!r}")
    return body[name]


def _socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


async def _exit_when_disowned(paths: Paths, done: asyncio.Event) -> None:
    """Stop once router.json no longer names this process (SHIPMATE_HOME deleted, or the
    file removed by hand): nothing could find this router to manage or stop it any more."""
    while True:
        await asyncio.sleep(DISOWNED_CHECK)
        try:
            owner = json.loads(paths.info.read_text()).get("pid")
        except FileNotFoundError:
            owner = None
        except (OSError, ValueError, AttributeError):
            continue  # unreadable for a moment: not a reason to stop serving
        if owner != os.getpid():
            log.warning("router: %s no longer names this process; stopping", paths.info)
            done.set()
            return


def _probe(host: str, port: int) -> int:
    """Bind `host:port` alone (OSError when taken) and return the port (0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the real listener: connections of an earlier router in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return int(probe.getsockname()[1])


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"ERROR: --listen must be HOST:PORT, got {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


async def run(home: Path, listen: str, domain: str, workers: int = 1) -> int:
    paths = Paths(home)
    home.mkdir(parents=True, exist_ok=True)
    if _socket_answers(paths.socket):
        print(f"ERROR: a router is already running on {paths.socket}", flush=True)
        return 1
    table = load_table(paths.routes)
    host, port = _split(listen)
    try:
        if workers > 1:
            # SO_REUSEPORT would let this router share a port another one holds (say, of
            # another SHIPMATE_HOME) without a word: bind once without it to find out.
            port = _probe(host, port)
        router = Router(table, host, port, domain, reuse_port=workers > 1)
        await router.start()
    except OSError as exc:
        print(f"ERROR: cannot listen on {listen} for the router: {exc.strerror}", flush=True)
        return 1
    address = f"[{router.host}]" if ":" in router.host else router.host
    others = Workers(workers, f"{address}:{router.port}", router.domain)
    try:
        await others.start(table.snapshot())
    except (OSError, TimeoutError, ConnectionError) as exc:
        # Serving from one process is slower, not wrong.
        log.error("router: cannot start the other router processes (%s); serving alone", exc)
        await others.stop(grace=0)
        others = Workers(1, others.listen, router.domain)
    started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    health = {
        "service": SERVICE,
        "pid": os.getpid(),
        "url": router.url,
        "started": started,
        "domain": router.domain,
    }
    admin = Admin(table, paths, health, others)
    admin.persist()
    paths.socket.unlink(missing_ok=True)
    # Created with no permission for group and others, so no moment exists when another
    # user could connect; chmod again in case the umask was stricter than needed.
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(
            admin.serve, path=str(paths.socket), limit=MAX_HEAD
        )
    except OSError as exc:
        await asyncio.gather(router.stop(grace=0), others.stop(grace=0))
        print(f"ERROR: cannot create the admin socket {paths.socket}: {exc}", flush=True)
        return 1
    finally:
        os.umask(old_umask)
    os.chmod(paths.socket, 0o600)
    info = {"pid": os.getpid(), "url": router.url, "started": started}
    info["socket"] = str(paths.socket)
    write_atomically(paths.info, json.dumps(info) + "\n")
    log.info("router: listening on %s, admin on %s", router.url, paths.socket)
    print(f"shipmate router listening on {router.url} (pid {os.getpid()})", flush=True)

    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, done.set)
    orphan = asyncio.create_task(_exit_when_disowned(paths, done))
    try:
        await done.wait()
    finally:
        orphan.cancel()
        log.info("router: stopping")
        server.close()
        await admin.close()
        await asyncio.gather(router.stop(grace=5), others.stop(grace=5))
        # Only our own files: a router started after us (it would have refused while we
        # answered, but be safe) keeps its own.
        with contextlib.suppress(OSError, ValueError):
            if json.loads(paths.info.read_text()).get("pid") == os.getpid():
                paths.info.unlink()
                paths.socket.unlink(missing_ok=True)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    from shipmate.config import DEFAULT_ROUTER, shipmate_home

    parser = argparse.ArgumentParser(
        prog="python -m shipmate.router",
        description="Run the shipmate router as a daemon (the rack starts it for you).",
    )
    parser.add_argument("--home", type=Path, default=None, help="default: SHIPMATE_HOME")
    parser.add_argument("--listen", default=DEFAULT_ROUTER, metavar="HOST:PORT")
    parser.add_argument("--domain", default="localhost")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_count(),
        help="router processes sharing the port (default: one per CPU, at most 4)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.Formatter.converter = time.gmtime
    home = (args.home or shipmate_home()).expanduser().resolve()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        code = runner.run(run(home, args.listen, args.domain, max(1, args.workers)))
    sys.exit(code)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed: its event loop and transports are written in C and take
    about a tenth off the router's CPU time per request (docs/BENCHMARKS.md)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
