"""The Kubernetes runtime's request flow against kmock's emulator and the test controller:
apply and watch a rollout, relay Events, revert after a crash-loop, processes, delete."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from shipmate.runtimes.base import RolloutFailed
from shipmate.runtimes.kubernetes import cluster, objects
from shipmate.runtimes.kubernetes.runtime import KubernetesRuntime
from tests.k8s.emulator import emulated_cluster
from tests.k8s.test_objects import desired


def _with_env(extra: dict[str, str], release: str):  # type: ignore[no-untyped-def]
    base = desired()
    services = tuple(replace(s, environment={**s.environment, **extra}) for s in base.services)
    return replace(base, release_id=release, services=services, deadline=5)


def test_rollout_events_crash_loop_and_revert(tmp_path: Path) -> None:
    with emulated_cluster(tmp_path) as config:
        asyncio.run(_flow(str(config)))


async def _flow(config: str) -> None:
    runtime = KubernetesRuntime(
        cluster.Cluster(await cluster.connect(config)), objects.Options(namespace_prefix="convox")
    )
    lines: list[str] = []

    def emit(obj: str, message: str) -> None:
        lines.append(f"{obj} {message}")

    try:
        good = _with_env({}, "RBCDEFGHIJ")
        await runtime.apply(good, emit)
        text = "\n".join(lines)
        assert "web Scaled up replica set web-" in text
        assert "Created pod: web-" in text
        assert "Successfully assigned convox-myapp/web-" in text
        assert 'Pulling image "registry.host/convox/myapp:web.BABCDEFGHI"' in text
        assert "Started container main" in text
        processes = await runtime.processes("myapp")
        assert sorted(p.service for p in processes) == ["web"] * 3 + ["worker"]
        assert {p.release_id for p in processes} == {"RBCDEFGHIJ"}

        lines.clear()
        with pytest.raises(RolloutFailed) as failed:
            await runtime.apply(_with_env({"CRASH": "1"}, "RCDEFGHIJK"), emit)
        assert failed.value.kind == "deadline"
        assert "Back-off restarting failed container main" in failed.value.reason
        assert any("Back-off restarting failed container main in pod web-" in x for x in lines)

        lines.clear()
        await runtime.apply(good, emit)  # the revert
        assert any(x.endswith("Stopping container main") for x in lines)
        processes = await runtime.processes("myapp")
        assert {p.release_id for p in processes} == {"RBCDEFGHIJ"}
        assert len(processes) == 4

        await runtime.remove("myapp", emit)
        assert await runtime.cluster.deployments("convox-myapp", "myapp") == []
    finally:
        await runtime.shutdown()
