"""A test controller for kmock's Kubernetes emulator: it plays the Deployment and ReplicaSet
controllers and the kubelet, well enough for the runtime's requests to meet what a cluster
answers. For each Deployment whose spec changed it sets `metadata.generation` (the emulator
keeps none), "creates" a ReplicaSet named `<deployment>-<template hash>` and its Pods, posts
the Events a cluster posts with their real reasons and message formats, and advances
`/status`. A container whose service has `CRASH=1` in the release's Secret crash-loops: its
pods never get ready and the kubelet's `BackOff` Event is posted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kmock
from kubernetes.aio import client

NODE = "instance-0a1b2c3d4e5f"
RESOURCES = {
    "apps/v1/deployments": ("Deployment", True),
    "v1/events": ("Event", True),
    "v1/pods": ("Pod", True),
    "v1/secrets": ("Secret", True),
    "v1/services": ("Service", True),
    "networking.k8s.io/v1/ingresses": ("Ingress", True),
    "batch/v1/jobs": ("Job", True),
    "v1/namespaces": ("Namespace", False),
}


class Emulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """kmock's emulator, plus what its API server would set at once: a Deployment's
    `metadata.generation`, raised on every change of its spec (the emulator keeps none)."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.specs: dict[tuple[str | None, str | None], str] = {}

    async def _handle(self, request: Any) -> Any:
        response = await super()._handle(request)
        resource = request.resource
        if (
            resource is not None
            and resource.plural == "deployments"
            and request.subresource is None
            and request.action in (kmock.action.CREATE, kmock.action.UPDATE)
        ):
            name = request.name or (request.data or {}).get("metadata", {}).get("name")
            namespace = request.namespace
            key = (resource, namespace, name)
            if key in self.objects and not self.objects[key].deleted:
                obj = self.objects[key]
                raw = obj.raw
                spec = json.dumps(raw.get("spec", {}), sort_keys=True)
                if self.specs.get((namespace, name)) != spec:
                    self.specs[namespace, name] = spec
                    generation = raw.get("metadata", {}).get("generation") or 0
                    obj.patch({"metadata": {"generation": generation + 1}})
        return response


def declare(emulator: kmock.KubernetesEmulator) -> None:
    for resource, (kind, namespaced) in RESOURCES.items():
        emulator.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=namespaced)


@dataclass
class Tracked:
    generation: int = 0
    spec: str = ""
    replica_set: str = ""
    pods: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # pods of a set that crash-loops
    failed_set: str = ""


def _suffix() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=5))


class Controller:
    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.api = api
        self.tracked: dict[tuple[str, str], Tracked] = {}
        self.count = 0

    async def run(self) -> None:
        while True:
            for deployment in (await self.apps.list_deployment_for_all_namespaces()).items:
                await self.reconcile(deployment)
            await asyncio.sleep(0.1)

    async def event(self, ns: str, kind: str, name: str, reason: str, message: str) -> None:
        self.count += 1
        now = datetime.now(UTC).isoformat()
        warning = reason in ("BackOff", "Unhealthy")
        await self.core.create_namespaced_event(
            ns,
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{name}.{self.count:016x}", "namespace": ns},
                "involvedObject": {"kind": kind, "name": name, "namespace": ns},
                "reason": reason,
                "message": message,
                "type": "Warning" if warning else "Normal",
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": "kubelet" if kind == "Pod" else "controller"},
            },
        )

    async def crashes(self, ns: str, container: Any) -> bool:
        for env in container.env or []:
            ref = env.value_from.secret_key_ref if env.value_from else None
            if env.name == "CRASH" and ref is not None:
                secret = await self.core.read_namespaced_secret(ref.name, ns)
                return (secret.string_data or {}).get(ref.key) == "1"
        return False

    async def status(self, ns: str, name: str, body: dict[str, Any]) -> None:
        await self.apps.patch_namespaced_deployment_status(
            name, ns, {"status": body}, _content_type="application/merge-patch+json"
        )

    async def reconcile(self, deployment: Any) -> None:
        ns, name = deployment.metadata.namespace, deployment.metadata.name
        raw = self.api.sanitize_for_serialization(deployment.spec)
        spec = json.dumps(raw, sort_keys=True)
        tracked = self.tracked.setdefault((ns, name), Tracked())
        if spec == tracked.spec:
            return
        tracked.spec = spec
        generation = deployment.metadata.generation or 0
        replicas = deployment.spec.replicas
        template = json.dumps(raw["template"], sort_keys=True).encode()
        replica_set = f"{name}-{hashlib.sha1(template).hexdigest()[:9]}"
        main = deployment.spec.template.spec.containers[0]
        old_set, old_pods = tracked.replica_set, tracked.pods
        if tracked.failed:  # the crash-looping set goes, whatever replaces it
            for pod in tracked.failed:
                await self.event(ns, "Pod", pod, "Killing", "Stopping container main")
                await self.core.delete_namespaced_pod(pod, ns)
            await self.event(
                ns,
                "Deployment",
                name,
                "ScalingReplicaSet",
                f"Scaled down replica set {tracked.failed_set} to 0",
            )
            tracked.failed, tracked.failed_set = [], ""
        if replica_set == old_set:  # a scale, or back to the set that serves
            await self.status(ns, name, self.done(generation, replicas))
            return
        await self.event(
            ns,
            "Deployment",
            name,
            "ScalingReplicaSet",
            f"Scaled up replica set {replica_set} to {replicas}",
        )
        pods = [f"{replica_set}-{_suffix()}" for _ in range(replicas)]
        crash = await self.crashes(ns, main)
        for pod in pods:
            await self.core.create_namespaced_pod(
                ns,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": pod,
                        "namespace": ns,
                        "labels": dict(deployment.spec.template.metadata.labels),
                    },
                    "spec": {
                        "nodeName": NODE,
                        "containers": [
                            {"name": "main", "image": main.image, "command": main.command}
                        ],
                    },
                    "status": {
                        "phase": "Pending",
                        "startTime": datetime.now(UTC).isoformat(),
                    },
                },
            )
            await self.event(
                ns, "ReplicaSet", replica_set, "SuccessfulCreate", f"Created pod: {pod}"
            )
            await self.event(
                ns, "Pod", pod, "Scheduled", f"Successfully assigned {ns}/{pod} to {NODE}"
            )
            await self.event(ns, "Pod", pod, "Pulling", f'Pulling image "{main.image}"')
        await self.status(
            ns,
            name,
            {
                "observedGeneration": generation,
                "replicas": replicas + len(old_pods),
                "updatedReplicas": replicas,
                "readyReplicas": len(old_pods),
                "availableReplicas": len(old_pods),
                "unavailableReplicas": replicas,
            },
        )
        await asyncio.sleep(0.2)
        for pod in pods:
            await self.event(ns, "Pod", pod, "Pulled", f'Successfully pulled image "{main.image}"')
            await self.event(ns, "Pod", pod, "Created", "Created container main")
            await self.event(ns, "Pod", pod, "Started", "Started container main")
        if crash:
            for pod in pods:
                await self.event(
                    ns,
                    "Pod",
                    pod,
                    "BackOff",
                    f"Back-off restarting failed container main in pod {pod}_{ns}",
                )
            # The new pods never get ready; the old ones keep serving. The next spec (a
            # revert) replaces them.
            tracked.failed, tracked.failed_set = pods, replica_set
            return
        for pod in pods:
            await self.core.patch_namespaced_pod(
                pod,
                ns,
                {"status": {"phase": "Running"}},
                _content_type="application/merge-patch+json",
            )
        for pod in old_pods:
            await self.event(ns, "Pod", pod, "Killing", "Stopping container main")
            await self.core.delete_namespaced_pod(pod, ns)
        if old_set:
            await self.event(
                ns,
                "Deployment",
                name,
                "ScalingReplicaSet",
                f"Scaled down replica set {old_set} to 0",
            )
        tracked.replica_set, tracked.pods = replica_set, pods
        await self.status(ns, name, self.done(generation, replicas))

    def done(self, generation: int, replicas: int) -> dict[str, Any]:
        return {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }
