"""The router daemon's lifecycle, for `rack start` and `rack stop --all`: find the router
that serves a SHIPMATE_HOME, adopt it or start one (detached), stop it, and start it again
when it dies while the rack runs (daemon.py is the process itself)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from shipmate.common.addresses import join_host_port
from shipmate.common.pids import pid_alive, same_process
from shipmate.common.waiting import WaitTimeout, poll_until
from shipmate.router.errors import RouterError
from shipmate.router.home import SERVICE, Paths, listen_address

log = logging.getLogger("shipmate.router")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class RouterInfo:
    pid: int
    url: str
    started: str
    https_url: str | None = None


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


def _is_router(pid: int, start_time: object) -> bool:
    """Whether `pid` is still the router that wrote router.json."""
    if isinstance(start_time, int):
        return same_process(pid, start_time)
    # A router.json of before start times were recorded: a recycled PID can name any
    # program, /proc tells whether it is still a router.
    if not pid_alive(pid):
        return False
    try:
        return b"shipmate.router" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True


def running(paths: Paths) -> RouterInfo | None:
    """The router named by router.json, when that process is alive and answers as a router."""
    try:
        data = json.loads(paths.info.read_text())
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _is_router(pid, data.get("start_time")):
        return None
    answer = health(paths)
    if answer is None or answer.get("pid") != pid:
        return None
    return RouterInfo(
        pid=pid,
        url=str(answer["url"]),
        started=str(answer.get("started", "")),
        https_url=answer.get("https_url"),
    )


def _same_address(url: str, listen: str) -> bool:
    """Whether a router at `url` is what `--router listen` asks for (port 0: any port)."""
    try:
        host, port = listen_address(listen)
    except ValueError:
        return False
    parsed = urlsplit(url)
    return host == parsed.hostname and port in (0, parsed.port)


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
    paths: Paths,
    listen: str,
    domain: str = "localhost",
    *,
    workers: int | None = None,
    listen_https: str | None = None,
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
                *(["--listen-https", listen_https] if listen_https else []),
            ],
            cwd=paths.home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def answered() -> RouterInfo | None:
        if process.poll() is not None:
            raise RouterError(f"the router did not start: {_last_line(paths.log, offset)}")
        info = running(paths)
        return info if info is not None and info.pid == process.pid else None

    try:
        return poll_until(answered, START_TIMEOUT, what="the router")
    except WaitTimeout:
        process.kill()
        process.wait()
        raise RouterError(
            f"the router did not answer within {START_TIMEOUT:g}s; see {paths.log}"
        ) from None


def ensure(
    paths: Paths, listen: str, domain: str = "localhost", listen_https: str | None = None
) -> tuple[RouterInfo, bool]:
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
    return start(paths, listen, domain, listen_https=listen_https), False


def stop(paths: Paths, timeout: float = STOP_TIMEOUT) -> RouterInfo | None:
    """Stop the running router (SIGTERM: requests in flight finish); None if none ran."""
    info = running(paths)
    if info is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGTERM)
    try:
        poll_until(lambda: not pid_alive(info.pid), timeout, what=f"router {info.pid} to exit")
    except WaitTimeout:
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGKILL)
    return info


async def supervise(
    paths: Paths, url: str, interval: float = 2.0, https_url: str | None = None
) -> None:
    """Start the router again, on the same address, whenever it is found not running (the
    rack runs this for as long as it lives; the table comes back from routes.json)."""
    parsed = urlsplit(url)
    assert parsed.hostname is not None and parsed.port is not None
    listen = join_host_port(parsed.hostname, parsed.port)
    listen_https = None
    if https_url:
        secure = urlsplit(https_url)
        assert secure.hostname is not None and secure.port is not None
        listen_https = join_host_port(secure.hostname, secure.port)
    while True:
        await asyncio.sleep(interval)
        if await asyncio.to_thread(running, paths) is not None:
            continue
        log.warning("router: not running; starting it again on %s", listen)
        try:
            info = await asyncio.to_thread(start, paths, listen, listen_https=listen_https)
        except RouterError as exc:
            log.error("router: %s", exc)
        else:
            log.info("router: running again (pid %d)", info.pid)
