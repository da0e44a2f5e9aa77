"""The Kubernetes runtime: a release applied as objects (objects.py), its rollout watched
(rollout.py), through the official client (cluster.py). The cluster is the truth: a
restarted rack re-applies each app's active release, which changes nothing that runs.

Not yet here (each says so when asked): one-off processes (`run`, release commands),
canaries, log sources and `deploy-debug` diagnoses.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shipmate.runtimes.base import (
    DesiredState,
    EventSink,
    ProcessInfo,
    RolloutFailed,
    Traffic,
)
from shipmate.runtimes.kubernetes import objects, rollout
from shipmate.runtimes.kubernetes.cluster import Cluster, connect
from shipmate.runtimes.without_oneoffs import WithoutOneOffs

STATUS = {"Pending": "starting", "Running": "running", "Succeeded": "exited", "Failed": "exited"}


class KubernetesRuntime(WithoutOneOffs):
    name = "k8s"  # events read system/k8s/<object>, as on the seed's page
    isolation = ""

    def __init__(
        self,
        cluster: Cluster | None,
        options: objects.Options,
        kubeconfig: str | None = None,
    ) -> None:
        """`cluster`: connected already; else connected on first use from `kubeconfig`
        (None: in-cluster credentials)."""
        self._cluster = cluster
        self.options = options
        self.kubeconfig = kubeconfig

    @property
    def cluster(self) -> Cluster:
        assert self._cluster is not None
        return self._cluster

    async def connected(self) -> Cluster:
        if self._cluster is None:
            self._cluster = Cluster(await connect(self.kubeconfig))
        return self._cluster

    def namespace(self, app: str) -> str:
        return objects.namespace_name(self.options.namespace_prefix, app)

    async def apply(self, desired: DesiredState, emit: EventSink) -> None:
        await self.connected()
        ns = self.namespace(desired.app)
        relay = rollout.EventRelay(self.cluster, ns, emit)
        wanted = {s.name for s in desired.services}
        if desired.services:
            found = objects.render(desired, self.options)
            await self.cluster.ensure_namespace(found[0])
            await relay.start()
            for obj in found[1:]:
                await self.cluster.apply(obj)
        else:
            await relay.start()
        for deployment in await self.cluster.deployments(ns, desired.app):
            if deployment.metadata.name not in wanted:
                await self.cluster.delete_deployment(ns, deployment.metadata.name)
        await rollout.watch(self.cluster, ns, sorted(wanted), relay, desired.deadline)

    async def processes(self, app: str) -> list[ProcessInfo]:
        await self.connected()
        found = []
        for pod in await self.cluster.pods(self.namespace(app), app):
            labels = pod.metadata.labels or {}
            phase = pod.status.phase if pod.status else "Pending"
            found.append(
                ProcessInfo(
                    id=pod.metadata.name,
                    app=app,
                    service=labels.get("service", ""),
                    release_id=labels.get("release", ""),
                    status="stopping"
                    if pod.metadata.deletion_timestamp
                    else STATUS.get(phase, phase),
                    pid=None,
                    port=None,
                    started_at=(pod.status.start_time if pod.status else None)
                    or pod.metadata.creation_timestamp
                    or datetime.now(UTC),
                    command=" ".join(pod.spec.containers[0].command or []) if pod.spec else "",
                )
            )
        return found

    async def traffic(self, app: str) -> list[Traffic]:
        return []

    async def canary(self, desired: DesiredState, percent: int, emit: EventSink) -> None:
        raise RolloutFailed("error", "canaries are not supported on the kubernetes runtime yet")

    async def end_canary(self, app: str, keep: bool) -> None:
        return None

    async def remove(self, app: str, emit: EventSink) -> None:
        await self.connected()
        ns = self.namespace(app)
        if not await self.cluster.delete_namespace(ns):
            for deployment in await self.cluster.deployments(ns, app):
                await self.cluster.delete_deployment(ns, deployment.metadata.name)

    async def adopt(self) -> list[ProcessInfo]:
        # Nothing to take back: the Deployments kept running in the cluster, and recovery
        # re-applies each app's active release (unchanged objects, a rollout already done).
        return []

    async def stop_process(self, app: str, process_id: str, emit: EventSink) -> None:
        await self.connected()
        await self.cluster.delete_pod(self.namespace(app), process_id)

    async def shutdown(self) -> None:
        if self._cluster is not None:
            await self._cluster.close()
