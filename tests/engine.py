"""The Docker engine, registry and swarm of the swarm tests (scripts/engine-up.sh starts them).

Found through SHIPMATE_ENGINE_DIR's `env` file (default /var/lib/shipmate-engine/env) or
DOCKER_HOST + SHIPMATE_REGISTRY. Outside CI a test that needs them skips, saying why; in CI
(CI=true or SHIPMATE_REQUIRE_ENGINE=1: .ci/run started them) a missing engine fails.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

ENGINE_DIR = Path(os.environ.get("SHIPMATE_ENGINE_DIR") or "/var/lib/shipmate-engine")


@dataclass(frozen=True)
class Engine:
    docker_host: str
    registry: str

    def client(self):  # type: ignore[no-untyped-def]
        import docker

        return docker.DockerClient(base_url=self.docker_host, timeout=120)


def _settings() -> dict[str, str]:
    found: dict[str, str] = {}
    env_file = ENGINE_DIR / "env"
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                found[key] = value
    for key in ("DOCKER_HOST", "SHIPMATE_REGISTRY"):
        if os.environ.get(key):
            found[key] = os.environ[key]
    return found


def find_engine() -> Engine:
    """The engine, or a skip (a failure in CI) that says how to start one."""
    settings = _settings()
    reason = ""
    if "DOCKER_HOST" not in settings or "SHIPMATE_REGISTRY" not in settings:
        reason = "no Docker engine: run scripts/engine-up.sh (as root) to start one"
    else:
        engine = Engine(settings["DOCKER_HOST"], settings["SHIPMATE_REGISTRY"])
        try:
            client = engine.client()
            try:
                if client.info()["Swarm"]["LocalNodeState"] != "active":
                    reason = f"the engine at {engine.docker_host} is in no swarm"
            finally:
                client.close()
        except Exception as exc:  # the engine does not answer
            reason = f"no Docker engine answers at {engine.docker_host} ({exc})"
        if not reason:
            return engine
    if os.environ.get("CI") == "true" or os.environ.get("SHIPMATE_REQUIRE_ENGINE"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)
