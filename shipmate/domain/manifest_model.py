"""The manifest as the rest of shipmate sees it: services with every default filled in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shipmate.domain.errors import NotFound
from shipmate.domain.traffic import WatchRule

DEFAULT_DEADLINE = 120


@dataclass(frozen=True, init=False)
class Health:
    """How a routed service's processes are checked.

    `grace` defaults to `interval`, `timeout` to `interval - 1` (at least 1), as in Convox.
    """

    path: str
    grace: int
    interval: int
    timeout: int

    def __init__(
        self,
        path: str = "/",
        grace: int | None = None,
        interval: int = 5,
        timeout: int | None = None,
    ) -> None:
        # A hand-written __init__ so the derived defaults need no Optional in the field types.
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "grace", interval if grace is None else grace)
        object.__setattr__(self, "timeout", max(1, interval - 1) if timeout is None else timeout)


@dataclass(frozen=True)
class EnvVar:
    """One manifest environment entry: `KEY` (required) or `KEY=default` (optional)."""

    key: str
    default: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Service:
    """One service of the manifest, with every default filled in.

    `minimum` and `maximum` are `deployment.minimum` / `deployment.maximum` (percent of `count`
    that must stay healthy / may run during a rollout). `deadline` is `deployment.deadline`, a
    shipmate extension: the seconds a promotion may take before it is reverted (default 120).
    `termination_grace` is `termination.grace`: seconds between SIGTERM and SIGKILL.
    `memory` (MB) and `cpu` (CPU units, 1024 = one CPU) are `scale.memory` / `scale.cpu`:
    the limits of each process, None for none.
    """

    name: str
    build: str = "."
    command: str | None = None
    port: int | None = None
    health: Health = field(default_factory=Health)
    count: int = 1
    environment: tuple[EnvVar, ...] = ()
    minimum: int = 50
    maximum: int = 200
    termination_grace: int = 30
    deadline: int = DEFAULT_DEADLINE
    memory: int | None = None
    cpu: int | None = None
    watch: WatchRule | None = None  # deployment.watch: judged by the router's counts
    # `domain:` as written (one name or a list, `${VAR}` expanded from the release's env when
    # routed: domain/domains.py); `https: redirect` sends plain HTTP on to HTTPS.
    domains: tuple[str, ...] = ()
    https_redirect: bool = False


@dataclass(frozen=True)
class Manifest:
    """A loaded manifest. `warnings` name the accepted keys this runtime ignores."""

    services: tuple[Service, ...]
    environment: tuple[EnvVar, ...] = ()
    release: str | None = None
    warnings: tuple[str, ...] = ()

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        known = ", ".join(s.name for s in self.services) or "none"
        raise NotFound(f"no service {name!r} in the manifest: its services are {known}")

    def _declared(self, service: Service | None) -> dict[str, str | None]:
        # Service entries override app-wide ones, so a service default satisfies an app-wide
        # requirement for that service (Convox's ServiceEnvironment does the same).
        declared: dict[str, str | None] = {e.key: e.default for e in self.environment}
        if service is not None:
            declared.update((e.key, e.default) for e in service.environment)
        return declared

    def required_keys(self) -> list[str]:
        """Keys some process needs and no manifest default provides, sorted."""
        scopes: Iterable[Service | None] = self.services or (None,)
        keys = {
            key
            for scope in scopes
            for key, default in self._declared(scope).items()
            if default is None
        }
        return sorted(keys)

    def missing_env(self, env: Mapping[str, str]) -> list[str]:
        """Required keys absent from `env`, sorted (for `ERROR: required env: A, B`)."""
        return [key for key in self.required_keys() if key not in env]

    def process_env(self, service_name: str, release_env: Mapping[str, str]) -> dict[str, str]:
        """The environment of a process of `service_name`, before the platform's own variables.

        App defaults, then service defaults, then the release environment over both.
        """
        declared = self._declared(self.service(service_name))
        env = {key: default for key, default in declared.items() if default is not None}
        env.update(release_env)
        return env

    def deadline(self) -> int:
        """Seconds a promotion of this manifest may take before it is reverted."""
        return max((s.deadline for s in self.services), default=DEFAULT_DEADLINE)

    def watch(self) -> WatchRule | None:
        """The app's watch: the router counts per release, not per service, so the services'
        rules combine into the strictest (the longest duration, the lowest bounds)."""
        rules = [s.watch for s in self.services if s.watch is not None and s.port is not None]
        if not rules:
            return None
        errors = [r.errors for r in rules if r.errors is not None]
        latency = [r.latency for r in rules if r.latency is not None]
        return WatchRule(
            duration=max(r.duration for r in rules),
            errors=min(errors) if errors else None,
            latency=min(latency) if latency else None,
            requests=max(r.requests for r in rules),
        )
