"""What the swarm runtime hands the engine: one Swarm service per (app, service, release),
its environment in one Docker secret, its tasks published on host-mode ports.

Routing does not use Swarm's routing mesh (it needs IPVS, which many hosts, these among them,
lack): each task gets a host port of its own (`--publish mode=host,target=PORT`), and
shipmate's router sends requests to those ports once shipmate's own health checks pass.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from shipmate.domain.ids import release_hash
from shipmate.runtimes.base import DesiredState, ServiceSpec

LABEL_APP = "shipmate.app"
LABEL_SERVICE = "shipmate.service"
LABEL_RELEASE = "shipmate.release"
ENV_TARGET = "shipmate.env"
ENV_PATH = f"/run/secrets/{ENV_TARGET}"


def service_name(app: str, service: str, release_id: str) -> str:
    return f"{app}-{service}-{release_hash(release_id)}"


def env_file(environment: Mapping[str, str]) -> bytes:
    """The release's environment as a file that `sh` sources (one secret per release)."""
    lines = (f"export {k}={shlex.quote(v)}\n" for k, v in sorted(environment.items()))
    return "".join(lines).encode()


def entry_args(spec: ServiceSpec, image_cmd: list[str]) -> list[str]:
    """The task's command: source the release's environment, then run the manifest's command
    (through /bin/sh -c, as on local) or else the image's own ENTRYPOINT + CMD."""
    command = spec.command or " ".join(shlex.quote(part) for part in image_cmd)
    return ["/bin/sh", "-c", f'. {ENV_PATH} && exec /bin/sh -c "$1"', "sh", command]


def create_spec(
    desired: DesiredState, spec: ServiceSpec, secret_id: str, secret_name: str, image_cmd: list[str]
) -> dict[str, Any]:
    """Keyword arguments of the SDK's `APIClient.create_service`."""
    from docker import types

    environment = dict(spec.environment)
    if spec.port is not None:
        environment["PORT"] = str(spec.port)
    labels = {LABEL_APP: desired.app, LABEL_SERVICE: spec.name, LABEL_RELEASE: desired.release_id}
    container = types.ContainerSpec(
        image=spec.image,
        command=entry_args(spec, image_cmd),
        labels=labels,
        secrets=[types.SecretReference(secret_id, secret_name, filename=ENV_TARGET, mode=0o444)],
        stop_grace_period=int(spec.termination_grace * 1_000_000_000),
        init=True,  # SIGTERM reaches the app, not a PID 1 that ignores it
    )
    resources = types.Resources(
        mem_limit=spec.memory * 1024 * 1024 if spec.memory else None,
        cpu_limit=int(spec.cpu / 1024 * 1e9) if spec.cpu else None,
    )
    task = types.TaskTemplate(
        container,
        resources=resources,
        restart_policy=types.RestartPolicy(condition="any", delay=1_000_000_000),
    )
    ports = (
        [{"Protocol": "tcp", "TargetPort": spec.port, "PublishMode": "host"}]
        if spec.port is not None
        else []
    )
    return {
        "task_template": task,
        "name": service_name(desired.app, spec.name, desired.release_id),
        "labels": labels,
        "mode": types.ServiceMode("replicated", replicas=spec.count),
        "endpoint_spec": types.EndpointSpec(mode="dnsrr", ports=ports) if ports else None,
    }
