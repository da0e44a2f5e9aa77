"""The router as a process of its own: `python -m shipmate.router`.

It outlives the rack, so requests keep flowing while the API process is stopped, killed or
restarting. The rack changes routing through the admin API (admin.py: JSON over HTTP on the
unix socket SHIPMATE_HOME/router.sock, mode 0600, served by uvicorn); every change is written
to SHIPMATE_HOME/routes.json before it is acknowledged, so a restarted router serves the last
table at once, before any rack has spoken to it. lifecycle.py starts, adopts and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import uvicorn

from shipmate.common.addresses import join_host_port
from shipmate.common.files import atomic_write
from shipmate.common.pids import proc_start_time
from shipmate.common.waiting import wait_for
from shipmate.router.admin import Admin
from shipmate.router.home import SERVICE, Paths, SavedTable, listen_address, load_table
from shipmate.router.proxy import Router
from shipmate.router.tls import Certificates
from shipmate.router.workers import Workers, default_count

log = logging.getLogger("shipmate.router")

# How often the daemon checks that router.json still names it.
DISOWNED_CHECK = 5.0
# How long a /drained long poll in progress may hold the daemon's exit.
ADMIN_GRACE = 1


class _AdminServer(uvicorn.Server):
    # The daemon handles SIGTERM and SIGINT itself: they stop the router, not only the API.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def _admin_socket(path: Path) -> socket.socket:
    """The admin socket, listening, mode 0600 from the start."""
    path.unlink(missing_ok=True)
    # Created with no permission for group and others, so no moment exists when another
    # user could connect; chmod again in case the umask was stricter than needed.
    old_umask = os.umask(0o177)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return sock


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


def _load_certs(paths: Paths) -> Certificates:
    """The certificates saved in certs.json; a damaged one is logged and skipped (the rack
    pushes every certificate again when it starts)."""
    certs = Certificates()
    try:
        saved = json.loads(paths.certs.read_text())
    except FileNotFoundError:
        return certs
    except (OSError, ValueError) as exc:
        log.error("router: cannot read %s (%s); starting with no certificate", paths.certs, exc)
        return certs
    for name, pem in saved.items() if isinstance(saved, dict) else ():
        try:
            certs.put(name, pem["cert"], pem["key"])
        except (ValueError, KeyError, TypeError) as exc:
            log.error("router: certificate %s in %s skipped: %s", name, paths.certs, exc)
    return certs


async def run(
    home: Path, listen: str, domain: str, workers: int = 1, listen_https: str | None = None
) -> int:
    paths = Paths(home)
    home.mkdir(parents=True, exist_ok=True)
    if _socket_answers(paths.socket):
        print(f"ERROR: a router is already running on {paths.socket}", flush=True)
        return 1
    table = load_table(paths.routes)
    try:
        host, port = listen_address(listen)
    except ValueError:
        print(f"ERROR: --listen must be HOST:PORT, got {listen!r}", flush=True)
        return 1
    certs: Certificates | None = None
    https = None
    if listen_https:
        try:
            https_host, https_port = listen_address(listen_https)
        except ValueError:
            print(f"ERROR: --listen-https must be HOST:PORT, got {listen_https!r}", flush=True)
            return 1
        # Only this process terminates TLS (the workers serve plain HTTP): the certificates
        # and their keys live in one process, and one place swaps them.
        certs = _load_certs(paths)
        https = (https_host, https_port, certs.listener)
    try:
        if workers > 1:
            # SO_REUSEPORT would let this router share a port another one holds (say, of
            # another SHIPMATE_HOME) without a word: bind once without it to find out.
            port = _probe(host, port)
        router = Router(table, host, port, domain, reuse_port=workers > 1, https=https)
        await router.start()
    except OSError as exc:
        where = listen if listen_https is None else f"{listen} and {listen_https}"
        print(f"ERROR: cannot listen on {where} for the router: {exc.strerror}", flush=True)
        return 1
    tls_port = router.gateway.https_port
    others = Workers(workers, join_host_port(router.host, router.port), router.domain, tls_port)
    try:
        await others.start(table.snapshot(), table.canaries(), table.sites)
    except (OSError, TimeoutError, ConnectionError) as exc:
        # Serving from one process is slower, not wrong.
        log.error("router: cannot start the other router processes (%s); serving alone", exc)
        await others.stop(grace=0)
        others = Workers(1, others.listen, router.domain, tls_port)
    started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    health = {
        "service": SERVICE,
        "pid": os.getpid(),
        "url": router.url,
        "started": started,
        "domain": router.domain,
        "https_url": router.https_url,
    }
    saved = SavedTable(table, paths.routes)
    saved.save()

    def save_certs() -> None:
        if certs is not None:
            atomic_write(paths.certs, json.dumps(certs.as_json()) + "\n", mode=0o600)

    admin = Admin(table, saved, health, others, router.gateway.counters, certs, save_certs)
    try:
        sock = _admin_socket(paths.socket)
    except OSError as exc:
        await asyncio.gather(router.stop(grace=0), others.stop(grace=0))
        print(f"ERROR: cannot create the admin socket {paths.socket}: {exc}", flush=True)
        return 1
    config = uvicorn.Config(
        admin.app(),
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        server_header=False,
        timeout_graceful_shutdown=ADMIN_GRACE,
    )
    server = _AdminServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_for(lambda: server.started or serving.done(), 30, 0.01, "the admin API")
    if serving.done():
        await asyncio.gather(router.stop(grace=0), others.stop(grace=0))
        print(f"ERROR: the admin API did not start: {serving.exception()}", flush=True)
        return 1
    info = {
        "pid": os.getpid(),
        "url": router.url,
        "https_url": router.https_url,
        "started": started,
        "socket": str(paths.socket),
        # With the PID, names this process and no later one that reuses the PID.
        "start_time": proc_start_time(os.getpid()),
    }
    atomic_write(paths.info, json.dumps(info) + "\n")
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
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
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
    parser.add_argument("--listen-https", default=None, metavar="HOST:PORT")
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
        code = runner.run(
            run(home, args.listen, args.domain, max(1, args.workers), args.listen_https)
        )
    sys.exit(code)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed: its event loop and transports are written in C and take
    about a tenth off the router's CPU time per request (docs/BENCHMARKS.md)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
