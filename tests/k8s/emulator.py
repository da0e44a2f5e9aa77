"""kmock's Kubernetes emulator with the test controller, in a thread of its own with its own
event loop, so that a runtime (in the test's loop, or a rack in another process) speaks to it
over HTTP on 127.0.0.1 as to an API server. Writes a kubeconfig naming it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import kmock
import yaml
from kubernetes.aio import client

from tests.k8s.controller import Controller, Emulator, declare


def kubeconfig(url: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "test", "user": {"token": "emulator"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "test"}}],
        "current-context": "emulator",
    }


@contextlib.contextmanager
def emulated_cluster(directory: Path) -> Iterator[Path]:
    """The emulator and its controller running; yields the path of a kubeconfig for it."""
    ready = threading.Event()
    url: list[str] = []
    loop = asyncio.new_event_loop()
    stop = loop.create_future()

    async def serve() -> None:
        async with Emulator() as emulator, kmock.Server(emulator) as server:
            declare(emulator)
            url.append(str(server.url).rstrip("/"))
            async with client.ApiClient(client.Configuration(host=url[0])) as api:
                controller = asyncio.ensure_future(Controller(api).run())
                ready.set()
                try:
                    await stop
                finally:
                    controller.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await controller

    failed: list[BaseException] = []

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # said by the test, not lost in the thread
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # A loaded machine (the whole suite on four workers) can take many seconds to start it.
    assert ready.wait(60), "the emulator did not start within 60s"
    if failed:
        raise RuntimeError(f"the emulator did not start: {failed[0]!r}") from failed[0]
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig(url[0])))
    try:
        yield path
    finally:
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(10)
