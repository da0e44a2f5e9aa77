"""The router daemon seen from the rack: `RemoteRoutes` for the runtime, and finding, starting
and stopping the daemon (see daemon.py for the process itself and its admin API)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from shipmate.domain.errors import ShipmateError
from shipmate.router.daemon import SERVICE, Paths

log = logging.getLogger("shipmate.router")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
# How long a routing change is retried while the router cannot be reached (a router being
# restarted answers again well within this).
RETRY_FOR = 15.0


class RouterError(ShipmateError):
    """The router refused a change or could not be reached."""


@dataclass(frozen=True)
class RouterInfo:
    pid: int
    url: str
    started: str


class RemoteRoutes:
    """The `Routes` the runtime uses when the router runs as a daemon: one kept-alive client
    over the admin socket. Every call is idempotent, so a call that could not reach the router
    (restarting, say) is simply tried again for up to `retry_for` seconds."""

    def __init__(self, socket_path: Path, *, retry_for: float = RETRY_FOR) -> None:
        self.socket_path = socket_path
        self.retry_for = retry_for
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket_path)),
            base_url="http://router",
            timeout=httpx.Timeout(10.0),
        )

    async def _call(
        self, method: str, path: str, body: Any = None, *, timeout: float = 10.0
    ) -> Any:
        deadline = time.monotonic() + self.retry_for
        pause = 0.05
        while True:
            try:
                resp = await self._client.request(method, path, json=body, timeout=timeout)
                break
            except httpx.TransportError as exc:
                if time.monotonic() + pause > deadline:
                    raise RouterError(
                        f"the router does not answer on {self.socket_path} ({exc or type(exc)}); "
                        "`shipmate rack stop` and `rack start` start it again"
                    ) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
        try:
            answer = resp.json()
        except ValueError:
            answer = {}
        if resp.status_code >= 400:
            reason = answer.get("error") if isinstance(answer, dict) else None
            raise RouterError(f"the router refused {method} {path}: {reason or resp.status_code}")
        return answer

    async def declare(self, app: str, service: str) -> None:
        await self._call("POST", f"/routes/{app}/{service}/declare")

    async def set_backends(self, app: str, service: str, backends: list[str]) -> None:
        await self._call("PUT", f"/routes/{app}/{service}", {"backends": backends})

    async def add_backend(self, app: str, service: str, backend: str) -> None:
        await self._call("POST", f"/routes/{app}/{service}/add", {"backend": backend})

    async def remove_backend(self, app: str, service: str, backend: str) -> None:
        await self._call("POST", f"/routes/{app}/{service}/remove", {"backend": backend})

    async def remove_app(self, app: str) -> None:
        await self._call("DELETE", f"/routes/{app}")

    async def backends(self, app: str, service: str) -> list[str]:
        answer = await self._call("GET", "/routes")
        return list(answer["routes"].get(app, {}).get(service, []))

    async def snapshot(self) -> dict[str, dict[str, list[str]]]:
        """Every route: {app: {service: [backend, ...]}}."""
        return dict((await self._call("GET", "/routes"))["routes"])

    async def wait_drained(self, backend: str, timeout: float) -> bool:
        body = {"backend": backend, "timeout": timeout}
        answer = await self._call("POST", "/drained", body, timeout=max(timeout, 0) + 10.0)
        return bool(answer["drained"])

    async def aclose(self) -> None:
        await self._client.aclose()


# --- the daemon's lifecycle, for `rack start` and `rack stop --all` ------------------------------


def health(paths: Paths, timeout: float = 2.0) -> dict[str, Any] | None:
    """The router's answer on the admin socket, or None when nothing answers there."""
    if not paths.socket.exists():
        return None
    transport = httpx.HTTPTransport(uds=str(paths.socket))
    try:
        with httpx.Client(transport=transport, base_url="http://router", timeout=timeout) as c:
            resp = c.get("/health")
        answer = resp.json()
    except (httpx.HTTPError, ValueError):
        return None
    if resp.status_code != 200 or not isinstance(answer, dict) or answer.get("service") != SERVICE:
        return None
    return answer


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    # A recycled PID can name any program; /proc tells whether it is still a router.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    return b"shipmate.router" in cmdline


def running(paths: Paths) -> RouterInfo | None:
    """The router named by router.json, when that process is alive and answers as a router."""
    try:
        data = json.loads(paths.info.read_text())
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid):
        return None
    answer = health(paths)
    if answer is None or answer.get("pid") != pid:
        return None
    return RouterInfo(pid=pid, url=str(answer["url"]), started=str(answer.get("started", "")))


def _same_address(url: str, listen: str) -> bool:
    """Whether a router at `url` is what `--router listen` asks for (port 0: any port)."""
    host, _, port = listen.rpartition(":")
    parsed = urlsplit(url)
    same_host = (host.strip("[]") or "127.0.0.1") == parsed.hostname
    return same_host and (port in ("0", "") or int(port) == parsed.port)


def _last_line(path: Path, offset: int = 0) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        lines = [line for line in text.splitlines() if line.strip()]
    except OSError:
        return f"see {path}"
    for line in reversed(lines):
        if line.startswith("ERROR: "):
            return line.removeprefix("ERROR: ")
    return lines[-1] if lines else f"see {path}"


def start(
    paths: Paths, listen: str, domain: str = "localhost", *, workers: int | None = None
) -> RouterInfo:
    """Start the daemon detached from the caller (its own session, so it outlives the rack
    and signals sent to the rack's group never reach it); return once it answers."""
    paths.home.mkdir(parents=True, exist_ok=True)
    with paths.log.open("ab") as out:
        # Only what this start writes says why it failed: older starts wrote above it.
        offset = out.seek(0, os.SEEK_END)
        # -P and its home as working directory: a `shipmate/` or `httpx.py` in the directory
        # the rack was started from must not shadow the router's imports.
        process = subprocess.Popen(
            [
                sys.executable,
                "-P",
                "-m",
                "shipmate.router",
                "--home",
                str(paths.home.resolve()),
                "--listen",
                listen,
                "--domain",
                domain,
                *(["--workers", str(workers)] if workers else []),
            ],
            cwd=paths.home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RouterError(f"the router did not start: {_last_line(paths.log, offset)}")
        info = running(paths)
        if info is not None and info.pid == process.pid:
            return info
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise RouterError(f"the router did not answer within {START_TIMEOUT:g}s; see {paths.log}")


def ensure(paths: Paths, listen: str, domain: str = "localhost") -> tuple[RouterInfo, bool]:
    """The running router (adopted) or a new one; True when adopted.

    A running router is kept even when `listen` asks for another address: replacing it would
    cut the connections it is serving, which is exactly what running it apart avoids. The
    rack logs the difference; `shipmate rack stop --all` then `rack start` moves it.
    """
    info = running(paths)
    if info is not None:
        if not _same_address(info.url, listen):
            log.warning(
                "router: already running at %s (pid %d), not at %s as asked; keeping it "
                "(`shipmate rack stop --all` then `rack start` to move it)",
                info.url,
                info.pid,
                listen,
            )
        return info, True
    return start(paths, listen, domain), False


def stop(paths: Paths, timeout: float = STOP_TIMEOUT) -> RouterInfo | None:
    """Stop the running router (SIGTERM: requests in flight finish); None if none ran."""
    info = running(paths)
    if info is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(info.pid):
            return info
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGKILL)
    return info


async def supervise(paths: Paths, url: str, interval: float = 2.0) -> None:
    """Start the router again, on the same address, whenever it is found not running (the
    rack runs this for as long as it lives; the table comes back from routes.json)."""
    parsed = urlsplit(url)
    listen = f"{parsed.hostname}:{parsed.port}"
    while True:
        await asyncio.sleep(interval)
        if await asyncio.to_thread(running, paths) is not None:
            continue
        log.warning("router: not running; starting it again on %s", listen)
        try:
            info = await asyncio.to_thread(start, paths, listen)
        except RouterError as exc:
            log.error("router: %s", exc)
        else:
            log.info("router: running again (pid %d)", info.pid)
