"""Every object the Kubernetes runtime renders validates strictly against the official
schemas (kubernetes-validate, unknown fields are errors), for Kubernetes 1.30 and 1.33."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from shipmate.domain.images import image_ref
from shipmate.runtimes.base import DesiredState, HealthCheck, ServiceSpec
from shipmate.runtimes.kubernetes import objects

VERSIONS = ["1.30.0", "1.33.0"]
SECRETS = {"DATABASE_URL": "postgres://u:s3cret-value@db/app", "API_KEY": "k-very-secret"}


def desired(restart: bool = False) -> DesiredState:
    """An app with a routed web (3 replicas, custom health), a worker and limits."""
    env = {**SECRETS, "APP": "myapp", "RELEASE": "RZYXWVUTSR", "BUILD": "BABCDEFGHI"}
    web = ServiceSpec(
        name="web",
        command="python3 app.py",
        port=5000,
        health=HealthCheck("/healthz", grace=7, interval=3, timeout=2),
        count=3,
        minimum=50,
        maximum=150,
        termination_grace=25,
        environment={**env, "SERVICE": "web"},
        memory=256,
        cpu=512,
        image=image_ref("registry.host/convox", "myapp", "web", "BABCDEFGHI"),
    )
    worker = ServiceSpec(
        name="worker",
        command="python3 worker.py",
        port=None,
        health=HealthCheck("/", grace=5, interval=5, timeout=4),
        count=1,
        minimum=100,
        maximum=100,
        termination_grace=30,
        environment={**env, "SERVICE": "worker"},
        image=image_ref("registry.host/convox", "myapp", "worker", "BABCDEFGHI"),
    )
    return DesiredState(
        app="myapp",
        release_id="RZYXWVUTSR",
        build_id="BABCDEFGHI",
        directory=Path("/nonexistent"),
        services=(web, worker),
        deadline=60,
        restart_before=datetime(2026, 1, 15, 14, 30, tzinfo=UTC) if restart else None,
    )


OPTIONS = objects.Options(namespace_prefix="convox", ingress_class="nginx")


def rendered(reveal: bool = True, restart: bool = False) -> list[dict]:
    return objects.render(desired(restart), OPTIONS, "python3 migrate.py", reveal=reveal)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("restart", [False, True])
def test_every_object_validates_strictly(version: str, restart: bool) -> None:
    found = rendered(restart=restart)
    kinds = sorted(obj["kind"] for obj in found)
    assert kinds == sorted(
        ["Namespace", "Secret", "Job", "Deployment", "Deployment", "Service", "Ingress"]
    )
    for obj in found:
        kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_catches_an_unknown_field() -> None:
    bad = rendered()[3]
    bad["spec"]["template"]["spec"]["containers"][0]["helth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.33.0", strict=True)


def test_release_becomes_the_objects_the_issue_names() -> None:
    by = {(o["kind"], o["metadata"]["name"]): o for o in rendered(restart=True)}
    assert ("Namespace", "convox-myapp") in by
    web = by["Deployment", "web"]
    assert web["metadata"]["namespace"] == "convox-myapp"
    assert web["metadata"]["labels"] == {"app": "myapp", "release": "RZYXWVUTSR", "service": "web"}
    assert web["metadata"]["annotations"][objects.RELEASE_ANNOTATION] == "RZYXWVUTSR"
    spec = web["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": "50%", "maxUnavailable": "50%"}
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 25
    (main,) = pod["containers"]
    assert main["name"] == "main"
    assert main["image"] == "registry.host/convox/myapp:web.BABCDEFGHI"
    assert main["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 5000}
    assert main["readinessProbe"]["initialDelaySeconds"] == 7
    assert main["readinessProbe"]["periodSeconds"] == 3
    assert main["readinessProbe"]["timeoutSeconds"] == 2
    assert main["resources"] == {"limits": {"memory": "256Mi", "cpu": "500m"}}
    assert objects.RESTART_ANNOTATION in spec["template"]["metadata"]["annotations"]
    worker = by["Deployment", "worker"]["spec"]
    # minimum 100 / maximum 100: both would be 0, which the API server refuses.
    assert worker["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "0%"}
    assert "readinessProbe" not in worker["template"]["spec"]["containers"][0]
    assert ("Service", "worker") not in by and ("Ingress", "worker") not in by
    ingress = by["Ingress", "web"]["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["rules"][0]["host"] == "web.myapp.localhost"
    assert by["Job", "release-rzyxwvutsr"]["spec"]["backoffLimit"] == 0


def test_no_secret_value_in_any_deployment_nor_in_the_rendering() -> None:
    for obj in rendered():
        if obj["kind"] in ("Deployment", "Job"):
            text = json.dumps(obj)
            for value in SECRETS.values():
                assert value not in text
            for c in obj["spec"]["template"]["spec"]["containers"]:
                plain = [e for e in c["env"] if "value" in e]
                assert [e["name"] for e in plain] in ([], ["PORT"])
    text = objects.to_yaml(rendered(reveal=False))
    for value in SECRETS.values():
        assert value not in text
    docs = list(yaml.safe_load_all(text))
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert set(secret["stringData"].values()) == {objects.ELIDED}
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33.0", strict=True)
