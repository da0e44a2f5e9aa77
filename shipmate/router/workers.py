"""More router processes on the same port, for machines with more than one CPU.

One Python process relays requests on one CPU at most. The daemon (daemon.py) therefore runs
`workers - 1` more router processes, all listening on the router's port with SO_REUSEPORT
(the kernel spreads connections among them). The daemon keeps the one routing table: on
every change it sends the whole table to each worker over a socketpair and acknowledges the
change to the rack only once every worker has applied it, so "taken out of the route" means
out of every process. A drain waits until no worker has the backend in flight.

Workers exit when the daemon goes away (their end of the socketpair closes), after letting
their requests in flight finish; the daemon starts again any worker that dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from shipmate.common.addresses import split_host_port
from shipmate.router.proxy import Router
from shipmate.router.sites import Sites
from shipmate.router.table import Canaries, Routes, RouteTable

log = logging.getLogger("shipmate.router")

# How long the daemon waits for a worker to apply a change before giving up on it.
SYNC_TIMEOUT = 10.0
START_TIMEOUT = 30.0
RESTART_DELAY = 1.0


def default_count() -> int:
    """One router process per CPU, up to four (past that the app processes need them)."""
    return max(1, min(os.cpu_count() or 1, 4))


class Worker:
    """The daemon's handle on one worker process."""

    def __init__(self, index: int, listen: str, domain: str, https_port: int | None) -> None:
        self.index = index
        self.listen = listen
        self.domain = domain
        # Workers serve plain HTTP only; they need the HTTPS port for redirects to it.
        self.https_port = https_port
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listener: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    async def start(self, routes: Routes, canaries: Canaries, sites: Sites) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-P",  # the daemon's directory must not shadow imports (see remote.start)
                "-m",
                "shipmate.router.workers",
                "--fd",
                str(theirs.fileno()),
                "--listen",
                self.listen,
                "--domain",
                self.domain,
                *(["--https-port", str(self.https_port)] if self.https_port else []),
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        self._listener = asyncio.create_task(self._listen())
        # The worker listens only once it has the table, and answers this once it listens.
        message = {
            "op": "routes",
            "routes": routes,
            "canaries": canaries,
            "sites": sites.as_json(),
        }
        await self.call(message, START_TIMEOUT)

    async def _listen(self) -> None:
        assert self._reader is not None
        try:
            while line := await self._reader.readline():
                answer = json.loads(line)
                future = self._waiting.pop(answer.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(answer)
        except (OSError, ValueError):
            pass
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"router worker {self.pid} is gone"))
            self._waiting.clear()

    async def call(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self._writer is None or self._writer.is_closing():
            raise ConnectionError(f"router worker {self.pid} is gone")
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        self._writer.write(json.dumps({**message, "id": ident}).encode() + b"\n")
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._waiting.pop(ident, None)

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._listener is not None:
            self._listener.cancel()


class Workers:
    """The daemon's other router processes (none when `count` is 1)."""

    def __init__(self, count: int, listen: str, domain: str, https_port: int | None = None) -> None:
        self.count = count
        self.listen = listen
        self.domain = domain
        self.https_port = https_port
        self.workers: list[Worker] = []
        self._routes: Routes = {}
        self._canaries: Canaries = {}
        self._sites = Sites()
        self._stopping = False
        self._watchers: set[asyncio.Task[None]] = set()

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None]

    async def start(self, routes: Routes, canaries: Canaries, sites: Sites) -> None:
        self._routes, self._canaries, self._sites = routes, canaries, sites
        for index in range(1, self.count):
            worker = Worker(index, self.listen, self.domain, self.https_port)
            await worker.start(routes, canaries, sites)
            self.workers.append(worker)
            self._watch(worker)

    def _watch(self, worker: Worker) -> None:
        task = asyncio.create_task(self._supervise(worker))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _supervise(self, worker: Worker) -> None:
        assert worker.proc is not None
        code = await worker.proc.wait()
        worker.close()
        while not self._stopping:
            log.warning(
                "router: worker %s exited with code %s; starting it again", worker.pid, code
            )
            await asyncio.sleep(RESTART_DELAY)
            if self._stopping:
                return
            fresh = Worker(worker.index, self.listen, self.domain, self.https_port)
            try:
                await fresh.start(self._routes, self._canaries, self._sites)
            except (OSError, TimeoutError, ConnectionError) as exc:
                log.error("router: cannot start a worker: %s", exc)
                fresh.signal(signal.SIGKILL)
                fresh.close()
                continue
            self.workers = [fresh if w is worker else w for w in self.workers]
            self._watch(fresh)
            return

    async def sync(self, routes: Routes, canaries: Canaries, sites: Sites) -> None:
        """Every worker routes by `routes`, `canaries` and `sites` once this returns."""
        self._routes, self._canaries, self._sites = routes, canaries, sites
        message = {
            "op": "routes",
            "routes": routes,
            "canaries": canaries,
            "sites": sites.as_json(),
        }
        await asyncio.gather(*(self._sync_one(w, message) for w in list(self.workers)))

    async def _sync_one(self, worker: Worker, message: dict[str, Any]) -> None:
        try:
            await worker.call(message, SYNC_TIMEOUT)
        except (TimeoutError, ConnectionError) as exc:
            # A worker that cannot take the change must not keep routing by the old table.
            log.error("router: worker %s did not apply a change (%s); killing it", worker.pid, exc)
            worker.signal(signal.SIGKILL)

    async def drained(self, backend: str, timeout: float) -> bool:
        async def one(worker: Worker) -> bool:
            try:
                message = {"op": "drained", "backend": backend, "timeout": timeout}
                answer = await worker.call(message, timeout + SYNC_TIMEOUT)
            except (TimeoutError, ConnectionError):
                return True  # a worker that is gone has nothing in flight
            return bool(answer.get("drained"))

        return all(await asyncio.gather(*(one(w) for w in list(self.workers))))

    async def counters(self) -> list[dict[str, Any]]:
        """Each worker's response counts (`Counters.as_json`); none from a worker that does
        not answer (a restarted worker starts again from zero)."""

        async def one(worker: Worker) -> dict[str, Any]:
            try:
                answer = await worker.call({"op": "counters"}, SYNC_TIMEOUT)
            except (TimeoutError, ConnectionError):
                return {}
            return dict(answer.get("counters") or {})

        return list(await asyncio.gather(*(one(w) for w in list(self.workers))))

    async def stop(self, grace: float) -> None:
        self._stopping = True
        for worker in self.workers:
            worker.signal(signal.SIGTERM)
        for worker in self.workers:
            if worker.proc is None:
                continue
            try:
                async with asyncio.timeout(grace + 2):
                    await worker.proc.wait()
            except TimeoutError:
                worker.signal(signal.SIGKILL)
                await worker.proc.wait()
            worker.close()
        for task in list(self._watchers):
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)


# --- the worker process ----------------------------------------------------------------------


async def _work(fd: int, listen: str, domain: str, https_port: int | None) -> None:
    host, port = split_host_port(listen)
    table = RouteTable()
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    router = Router(table, host, port, domain, reuse_port=True)
    router.gateway.https_port = https_port
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    # Ctrl-C in a terminal reaches the whole process group; the daemon decides for us.
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    pending: set[asyncio.Task[None]] = set()

    def answer(message: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write(json.dumps(message).encode() + b"\n")

    async def drained(ident: int, backend: str, timeout: float) -> None:
        answer({"id": ident, "drained": await table.wait_drained(backend, timeout)})

    async def control() -> None:
        while line := await reader.readline():
            message = json.loads(line)
            op, ident = message.get("op"), message.get("id")
            if op == "routes":
                sites = Sites.from_json(message.get("sites"))
                table.load(message["routes"], message.get("canaries"), sites)
                if not router.listening:
                    await router.start()
                answer({"id": ident})
            elif op == "drained":
                task = asyncio.create_task(
                    drained(ident, str(message["backend"]), float(message["timeout"]))
                )
                pending.add(task)
                task.add_done_callback(pending.discard)
            elif op == "counters":
                answer({"id": ident, "counters": router.gateway.counters.as_json()})

    controlling = asyncio.create_task(control())
    stopping = asyncio.create_task(done.wait())
    try:
        await asyncio.wait({controlling, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # The daemon is gone (or stopping us): stop listening, let requests finish.
        await router.stop(grace=5)
        for task in (controlling, stopping, *pending):
            task.cancel()
        writer.close()


def main(argv: Sequence[str] | None = None) -> None:
    from shipmate.router.daemon import loop_factory

    parser = argparse.ArgumentParser(prog="python -m shipmate.router.workers")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--domain", default="localhost")
    parser.add_argument("--https-port", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(_work(args.fd, args.listen, args.domain, args.https_port))


if __name__ == "__main__":
    main()
