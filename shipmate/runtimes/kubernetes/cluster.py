"""The requests the runtime makes, through the official client's asyncio API
(`kubernetes.aio`): create-or-patch an object, read a Deployment's status, list Events and
Pods, delete. Objects go as dicts (objects.py); what comes back is the client's models."""

from __future__ import annotations

import logging
from typing import Any

from kubernetes.aio import client, config
from kubernetes.aio.client.exceptions import ApiException

log = logging.getLogger("shipmate.k8s")
MERGE = "application/merge-patch+json"
Obj = dict[str, Any]


async def connect(kubeconfig: str | None) -> client.ApiClient:
    """An API client from `kubeconfig` (a file), else in-cluster credentials."""
    if kubeconfig:
        configuration = client.Configuration()
        await config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
        return client.ApiClient(configuration)
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


class Cluster:
    def __init__(self, api: client.ApiClient) -> None:
        # The client's models are pydantic classes; objects go as dicts, hence Any.
        self.api: Any = api
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.networking: Any = client.NetworkingV1Api(api)
        self.batch: Any = client.BatchV1Api(api)

    async def ensure_namespace(self, obj: Obj) -> None:
        """Create the namespace unless it exists. kmock's emulator cannot create namespaces
        (it answers 500): that is logged and the objects are created in it all the same."""
        try:
            await self.core.create_namespace(obj)
        except ApiException as exc:
            if exc.status != 409:
                log.warning("namespace %s: %s %s", obj["metadata"]["name"], exc.status, exc.reason)

    async def apply(self, obj: Obj) -> None:
        """Create `obj`, or merge-patch it (the whole object) if it exists."""
        name = obj["metadata"]["name"]
        ns = obj["metadata"]["namespace"]
        create, patch = self._verbs(obj["kind"])
        try:
            await patch(name, ns, obj, _content_type=MERGE)
        except ApiException as exc:
            if exc.status != 404:
                raise
            await create(ns, obj)

    def _verbs(self, kind: str) -> tuple[Any, Any]:
        return {
            "Secret": (self.core.create_namespaced_secret, self.core.patch_namespaced_secret),
            "Service": (self.core.create_namespaced_service, self.core.patch_namespaced_service),
            "Deployment": (
                self.apps.create_namespaced_deployment,
                self.apps.patch_namespaced_deployment,
            ),
            "Ingress": (
                self.networking.create_namespaced_ingress,
                self.networking.patch_namespaced_ingress,
            ),
            "Job": (self.batch.create_namespaced_job, self.batch.patch_namespaced_job),
        }[kind]

    async def deployment(self, ns: str, name: str) -> Any:
        return await self.apps.read_namespaced_deployment_status(name, ns)

    async def deployments(self, ns: str, app: str) -> list[Any]:
        found = await self.apps.list_namespaced_deployment(ns, label_selector=f"app={app}")
        # The emulator ignores label selectors: filter here too.
        return [d for d in found.items if (d.metadata.labels or {}).get("app") == app]

    async def delete_deployment(self, ns: str, name: str) -> None:
        await self._tolerate_missing(self.apps.delete_namespaced_deployment(name, ns))

    async def events(self, ns: str) -> list[Any]:
        return list((await self.core.list_namespaced_event(ns)).items)

    async def pods(self, ns: str, app: str) -> list[Any]:
        found = await self.core.list_namespaced_pod(ns, label_selector=f"app={app}")
        return [p for p in found.items if (p.metadata.labels or {}).get("app") == app]

    async def delete_pod(self, ns: str, name: str) -> None:
        await self._tolerate_missing(self.core.delete_namespaced_pod(name, ns))

    async def delete_namespace(self, ns: str) -> bool:
        """False when the namespace could not be deleted (the emulator has none)."""
        try:
            await self.core.delete_namespace(ns)
        except ApiException:
            return False
        return True

    async def _tolerate_missing(self, request: Any) -> None:
        try:
            await request
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def close(self) -> None:
        await self.api.close()
