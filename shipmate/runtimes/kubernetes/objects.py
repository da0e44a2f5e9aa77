"""A release as Kubernetes objects: plain dicts, as `kubectl apply` would take them.

Per app a Namespace (`<prefix>-<app>`, as Convox names them); per release a Secret holding
its environment (never plain `env` values in a Deployment); per service a Deployment
(container `main`), and for a routed service a Service and an Ingress; for a release
command a Job. Labels `app`, `service`, `release` on everything, the release id in an
annotation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shipmate.domain.ids import release_hash
from shipmate.runtimes.base import DesiredState, ServiceSpec

RELEASE_ANNOTATION = "shipmate.dev/release"
RESTART_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
ELIDED = "****"

Obj = dict[str, Any]


@dataclass(frozen=True)
class Options:
    """What the rack adds to a release's own settings."""

    namespace_prefix: str = "shipmate"
    ingress_class: str | None = None
    domain: str = "localhost"  # routed service S of app A: host S.A.<domain>


def namespace_name(prefix: str, app: str) -> str:
    return f"{prefix}-{app}"


def secret_name(release_id: str) -> str:
    return f"env-{release_hash(release_id)}"


def job_name(release_id: str) -> str:
    return f"release-{release_hash(release_id)}"


def _labels(app: str, release_id: str, service: str | None = None) -> dict[str, str]:
    labels = {"app": app, "release": release_id}
    if service is not None:
        labels["service"] = service
    return labels


def _meta(name: str, namespace: str, labels: dict[str, str], release_id: str) -> Obj:
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "annotations": {RELEASE_ANNOTATION: release_id},
    }


def namespace(desired: DesiredState, options: Options) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace_name(options.namespace_prefix, desired.app),
            "labels": {"app": desired.app, "rack": options.namespace_prefix},
        },
    }


def _secret_key(service: str, key: str) -> str:
    return f"{service}.{key}"


def secret(desired: DesiredState, options: Options, reveal: bool = True) -> Obj:
    """The release's environment, one key `<service>.<NAME>` per variable of each service;
    `reveal=False` writes `****` for every value (what `releases render` prints)."""
    data = {
        _secret_key(s.name, key): (value if reveal else ELIDED)
        for s in desired.services
        for key, value in sorted(s.environment.items())
    }
    ns = namespace_name(options.namespace_prefix, desired.app)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(
            secret_name(desired.release_id),
            ns,
            _labels(desired.app, desired.release_id),
            desired.release_id,
        ),
        "type": "Opaque",
        "stringData": data,
    }


def _env(desired: DesiredState, spec: ServiceSpec) -> list[Obj]:
    env: list[Obj] = [
        {
            "name": key,
            "valueFrom": {
                "secretKeyRef": {
                    "name": secret_name(desired.release_id),
                    "key": _secret_key(spec.name, key),
                }
            },
        }
        for key in sorted(spec.environment)
    ]
    if spec.port is not None:
        env.append({"name": "PORT", "value": str(spec.port)})
    return env


def _resources(spec: ServiceSpec) -> Obj:
    limits: dict[str, str] = {}
    if spec.memory:
        limits["memory"] = f"{spec.memory}Mi"
    if spec.cpu:
        limits["cpu"] = f"{max(1, round(spec.cpu * 1000 / 1024))}m"
    return {"limits": limits} if limits else {}


def _seconds(value: float, minimum: int = 0) -> int:
    return max(minimum, math.ceil(value))


def container(desired: DesiredState, spec: ServiceSpec, command: str | None = None) -> Obj:
    main: Obj = {
        "name": "main",
        "image": spec.image,
        "command": ["/bin/sh", "-c", command or spec.command],
        "env": _env(desired, spec),
    }
    resources = _resources(spec)
    if resources:
        main["resources"] = resources
    if spec.port is not None and command is None:
        main["ports"] = [{"name": "main", "containerPort": spec.port, "protocol": "TCP"}]
        main["readinessProbe"] = {
            "httpGet": {"path": spec.health.path, "port": spec.port},
            "initialDelaySeconds": _seconds(spec.health.grace),
            "periodSeconds": _seconds(spec.health.interval, 1),
            "timeoutSeconds": _seconds(spec.health.timeout, 1),
            "failureThreshold": 3,
        }
    return main


def strategy(spec: ServiceSpec) -> Obj:
    """maxSurge/maxUnavailable from the service's `maximum`/`minimum` (% of its count), as
    Convox derives them; both 0 is refused by the API server, so a surge of one stays."""
    surge = max(0, spec.maximum - 100)
    unavailable = max(0, 100 - spec.minimum)
    rolling: Obj = {"maxSurge": f"{surge}%", "maxUnavailable": f"{unavailable}%"}
    if surge == 0 and unavailable == 0:
        rolling["maxSurge"] = 1
    return {"type": "RollingUpdate", "rollingUpdate": rolling}


def deployment(desired: DesiredState, spec: ServiceSpec, options: Options) -> Obj:
    ns = namespace_name(options.namespace_prefix, desired.app)
    labels = _labels(desired.app, desired.release_id, spec.name)
    template_meta: Obj = {"labels": labels, "annotations": {RELEASE_ANNOTATION: desired.release_id}}
    restart = desired.restart_before
    if restart is not None and (
        not desired.restart_services or spec.name in desired.restart_services
    ):
        template_meta["annotations"][RESTART_ANNOTATION] = restart.isoformat()
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec.name, ns, labels, desired.release_id),
        "spec": {
            "replicas": spec.count,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": _seconds(desired.deadline, 1),
            "selector": {"matchLabels": {"app": desired.app, "service": spec.name}},
            "strategy": strategy(spec),
            "template": {
                "metadata": template_meta,
                "spec": {
                    "terminationGracePeriodSeconds": _seconds(spec.termination_grace),
                    "containers": [container(desired, spec)],
                },
            },
        },
    }


def service(desired: DesiredState, spec: ServiceSpec, options: Options) -> Obj:
    assert spec.port is not None
    ns = namespace_name(options.namespace_prefix, desired.app)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(
            spec.name, ns, _labels(desired.app, desired.release_id, spec.name), desired.release_id
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": desired.app, "service": spec.name},
            "ports": [
                {"name": "main", "port": spec.port, "targetPort": spec.port, "protocol": "TCP"}
            ],
        },
    }


def ingress(desired: DesiredState, spec: ServiceSpec, options: Options) -> Obj:
    assert spec.port is not None
    ns = namespace_name(options.namespace_prefix, desired.app)
    body: Obj = {
        "rules": [
            {
                "host": f"{spec.name}.{desired.app}.{options.domain}",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {"name": spec.name, "port": {"number": spec.port}}
                            },
                        }
                    ]
                },
            }
        ]
    }
    if options.ingress_class:
        body = {"ingressClassName": options.ingress_class, **body}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(
            spec.name, ns, _labels(desired.app, desired.release_id, spec.name), desired.release_id
        ),
        "spec": body,
    }


def release_job(desired: DesiredState, command: str, options: Options) -> Obj:
    """The release command (`release:` in the manifest) as a Job of the first service's
    image and environment, run once before any Deployment changes."""
    spec = desired.services[0]
    ns = namespace_name(options.namespace_prefix, desired.app)
    labels = _labels(desired.app, desired.release_id, spec.name)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(job_name(desired.release_id), ns, labels, desired.release_id),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": _seconds(desired.deadline, 1),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container(desired, spec, command)],
                },
            },
        },
    }


def render(
    desired: DesiredState,
    options: Options,
    release_command: str | None = None,
    reveal: bool = True,
) -> list[Obj]:
    """Every object promoting `desired` applies, in the order it applies them."""
    objects = [namespace(desired, options), secret(desired, options, reveal)]
    if release_command:
        objects.append(release_job(desired, release_command, options))
    for spec in desired.services:
        objects.append(deployment(desired, spec, options))
        if spec.port is not None:
            objects.append(service(desired, spec, options))
            objects.append(ingress(desired, spec, options))
    return objects


def to_yaml(objects: list[Obj]) -> str:
    import yaml

    return "".join(
        "---\n" + yaml.safe_dump(obj, sort_keys=False, default_flow_style=False) for obj in objects
    )
