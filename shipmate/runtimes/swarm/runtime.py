"""The swarm runtime: the Runtime interface over Docker Swarm services and tasks.

A promotion creates the release's Swarm service (services.py) beside the one that serves,
waits until its tasks run (as the engine reports their states) and pass shipmate's own health
checks on their host ports, puts them in the router, then drains the old release's tasks out
of the router and removes its service and secret. A failed rollout raises RolloutFailed; the
promotion engine then applies the previous release, whose service still runs: the revert
never rebuilds and never pulls from anywhere but the rack's registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any

import httpx

from shipmate.common.addresses import join_host_port
from shipmate.domain.errors import InvalidInput
from shipmate.domain.humanize import utcnow
from shipmate.router.routes import Routes
from shipmate.runtimes.base import (
    DesiredState,
    EventSink,
    ProcessInfo,
    RolloutFailed,
    ServiceSpec,
    Traffic,
)
from shipmate.runtimes.swarm import services as specs
from shipmate.runtimes.without_oneoffs import WithoutOneOffs

POLL = 0.03
DRAIN_TIMEOUT = 30.0
# Task states (Docker's TaskState) that end a task.
ENDED = {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}


class SwarmRuntime(WithoutOneOffs):
    name = "swarm"

    def __init__(self, docker_host: str | None, routes: Routes) -> None:
        import docker

        self.client: Any = (
            docker.DockerClient(base_url=docker_host, timeout=60)
            if docker_host
            else docker.from_env(timeout=60)
        )
        self.routes = routes
        self.http = httpx.AsyncClient()

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    # --- what runs -----------------------------------------------------------------------

    async def _services(self, app: str | None = None) -> list[dict[str, Any]]:
        label = specs.LABEL_APP if app is None else f"{specs.LABEL_APP}={app}"
        found: list[dict[str, Any]] = await self._call(
            self.client.api.services, filters={"label": label}
        )
        return found

    async def _tasks(self, service_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._call(
            self.client.api.tasks, filters={"service": service_id, "desired-state": "running"}
        )
        return found

    async def _backend(self, task: dict[str, Any]) -> str:
        ports = task.get("Status", {}).get("PortStatus", {}).get("Ports") or []
        if not ports:
            return ""
        node = await self._call(self.client.api.inspect_node, task["NodeID"])
        return join_host_port(node["Status"]["Addr"], ports[0]["PublishedPort"])

    # --- apply ---------------------------------------------------------------------------

    async def apply(self, desired: DesiredState, emit: EventSink) -> None:
        deadline = time.monotonic() + desired.deadline
        for spec in desired.services:
            await self._roll(desired, spec, emit, deadline)
        wanted = {
            specs.service_name(desired.app, s.name, desired.release_id) for s in desired.services
        }
        for service in await self._services(desired.app):
            if service["Spec"]["Name"] not in wanted:
                await self._retire(service, emit)

    async def _roll(
        self, desired: DesiredState, spec: ServiceSpec, emit: EventSink, deadline: float
    ) -> None:
        name = specs.service_name(desired.app, spec.name, desired.release_id)
        existing = [s for s in await self._services(desired.app) if s["Spec"]["Name"] == name]
        if existing:
            service = existing[0]
            replicas = service["Spec"]["Mode"].get("Replicated", {}).get("Replicas")
            if replicas != spec.count:
                await self._call(
                    self.client.api.update_service,
                    service["ID"],
                    version=service["Version"]["Index"],
                    task_template=service["Spec"]["TaskTemplate"],
                    name=name,
                    labels=service["Spec"]["Labels"],
                    mode={"Replicated": {"Replicas": spec.count}},
                    endpoint_spec=service["Spec"].get("EndpointSpec"),
                )
                emit(spec.name, f"Scaled release {desired.release_id} to {spec.count}")
            service_id = service["ID"]
        else:
            service_id = await self._create(desired, spec, name)
            emit(name, f"Created service {name}")
            emit(spec.name, f"Scaled up release {desired.release_id} to {spec.count}")
        await self._wait_ready(desired, spec, service_id, emit, deadline)

    async def _create(self, desired: DesiredState, spec: ServiceSpec, name: str) -> str:
        image_cmd: list[str] = []
        if not spec.command:
            config = (await self._call(self.client.api.inspect_image, spec.image))["Config"]
            image_cmd = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        env = dict(spec.environment)
        if spec.port is not None:
            # Inside a container, listening on loopback would reach nobody. BIND_ADDRESS, not
            # HOST: an app's HOST is its own (`domain: ${HOST}`) and must reach it unchanged.
            env.update(PORT=str(spec.port), BIND_ADDRESS="0.0.0.0")
        secret = f"{name}-env"
        with contextlib.suppress(Exception):
            await self._call(self.client.api.remove_secret, secret)
        created = await self._call(
            self.client.api.create_secret,
            secret,
            specs.env_file(env),
            labels={specs.LABEL_APP: desired.app, specs.LABEL_RELEASE: desired.release_id},
        )
        kwargs = specs.create_spec(desired, spec, created["ID"], secret, image_cmd)
        result = await self._call(self.client.api.create_service, **kwargs)
        return str(result["ID"])

    async def _wait_ready(
        self,
        desired: DesiredState,
        spec: ServiceSpec,
        service_id: str,
        emit: EventSink,
        deadline: float,
    ) -> None:
        seen: dict[str, str] = {}
        healthy: set[str] = set()
        started: dict[str, float] = {}
        while True:
            everything = await self._call(self.client.api.tasks, filters={"service": service_id})
            for task in everything:
                state = task["Status"]["State"]
                short = task["ID"][:12]
                if seen.get(task["ID"]) != state:
                    seen[task["ID"]] = state
                    emit(short, _describe(task))
                if state in ("failed", "rejected"):
                    raise RolloutFailed("error", f"task {short} {_describe(task)}")
            running = [
                t
                for t in everything
                if t["DesiredState"] == "running" and t["Status"]["State"] == "running"
            ]
            for task in running:
                if task["ID"] in healthy:
                    continue
                started.setdefault(task["ID"], time.monotonic())
                if await self._healthy(spec, task, started[task["ID"]]):
                    healthy.add(task["ID"])
                    emit(task["ID"][:12], "Healthy")
                    backend = await self._backend(task)
                    if backend:
                        await self.routes.declare(desired.app, spec.name)
                        await self.routes.add_backend(desired.app, spec.name, backend)
            if len([t for t in running if t["ID"] in healthy]) >= spec.count:
                return
            if time.monotonic() > deadline:
                raise RolloutFailed(
                    "deadline", f"{spec.name}: {len(healthy)} of {spec.count} tasks healthy"
                )
            await asyncio.sleep(POLL)

    async def _healthy(self, spec: ServiceSpec, task: dict[str, Any], since: float) -> bool:
        if spec.port is None:
            return time.monotonic() - since >= spec.health.grace
        backend = await self._backend(task)
        if not backend:
            return False
        try:
            response = await self.http.get(
                f"http://{backend}{spec.health.path}", timeout=spec.health.timeout
            )
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 400

    async def _retire(self, service: dict[str, Any], emit: EventSink) -> None:
        labels = service["Spec"]["Labels"]
        app, name = labels[specs.LABEL_APP], labels[specs.LABEL_SERVICE]
        backends = [await self._backend(t) for t in await self._tasks(service["ID"])]
        for backend in filter(None, backends):
            await self.routes.remove_backend(app, name, backend)
        for backend in filter(None, backends):
            await self.routes.wait_drained(backend, DRAIN_TIMEOUT)
        emit(name, f"Scaled down release {labels[specs.LABEL_RELEASE]} to 0")
        with contextlib.suppress(Exception):
            await self._call(self.client.api.remove_service, service["ID"])
        emit(service["Spec"]["Name"], "Removed service")
        await self._remove_secret(f"{service['Spec']['Name']}-env")

    async def _remove_secret(self, name: str) -> None:
        # A secret in use by a task that is still stopping cannot go yet: try for a while.
        for _ in range(100):
            try:
                await self._call(self.client.api.remove_secret, name)
                return
            except Exception as exc:
                if "not found" in str(exc).lower():
                    return
                await asyncio.sleep(0.3)

    # --- observe -------------------------------------------------------------------------

    async def processes(self, app: str) -> list[ProcessInfo]:
        found = []
        for service in await self._services(app):
            labels = service["Spec"]["Labels"]
            for task in await self._tasks(service["ID"]):
                backend = await self._backend(task)
                state = task["Status"]["State"]
                found.append(
                    ProcessInfo(
                        id=task["ID"][:12],
                        app=app,
                        service=labels[specs.LABEL_SERVICE],
                        release_id=labels[specs.LABEL_RELEASE],
                        status="running" if state == "running" else "starting",
                        pid=None,
                        port=int(backend.rpartition(":")[2]) if backend else None,
                        started_at=_time(task.get("CreatedAt")),
                        command=" ".join(
                            service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Command") or []
                        )[-60:],
                    )
                )
        return found

    async def traffic(self, app: str) -> list[Traffic]:
        return []

    async def canary(self, desired: DesiredState, percent: int, emit: EventSink) -> None:
        raise InvalidInput("canary promotions are not available on the swarm runtime yet")

    async def end_canary(self, app: str, keep: bool) -> None:
        return None

    async def remove(self, app: str, emit: EventSink) -> None:
        for service in await self._services(app):
            await self._retire(service, emit)
        await self.routes.remove_app(app)

    async def adopt(self) -> list[ProcessInfo]:
        # The engine kept running: the rack finds its services by label.
        apps = {s["Spec"]["Labels"][specs.LABEL_APP] for s in await self._services()}
        found: list[ProcessInfo] = []
        for app in sorted(apps):
            found += await self.processes(app)
        return found

    async def stop_process(self, app: str, process_id: str, emit: EventSink) -> None:
        raise InvalidInput("ps stop is not available on the swarm runtime yet")

    async def shutdown(self) -> None:
        # The engine keeps the apps running; the next rack adopts them.
        await self.http.aclose()
        self.client.close()


def _describe(task: dict[str, Any]) -> str:
    status = task["Status"]
    state = status["State"]
    message = status.get("Err") or status.get("Message") or ""
    exit_code = status.get("ContainerStatus", {}).get("ExitCode")
    if state in ("failed", "complete") and exit_code is not None:
        return f"exited {exit_code}" + (f": {message}" if message else "")
    return f"{state.capitalize()}" + (f": {message}" if message else "")


def _time(value: str | None) -> datetime:
    if not value:
        return utcnow()
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value[:26].rstrip("Z") + "+00:00")
    return utcnow()
