"""Settings of a rack, read from the environment once at start."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from shipmate.common.addresses import split_host_port
from shipmate.domain.errors import ShipmateError

DEFAULT_API = "127.0.0.1:7070"
DEFAULT_ROUTER = "127.0.0.1:7080"
DEFAULT_ROUTER_HTTPS = "127.0.0.1:7443"


def shipmate_home() -> Path:
    return Path(os.environ.get("SHIPMATE_HOME") or Path.home() / ".shipmate").expanduser()


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    max_upload: int
    # The API serves HTTPS with these (PEM files); set by `rack start --tls-cert/--tls-key`.
    tls_cert: str | None = None
    tls_key: str | None = None
    # The router's HTTPS listener (`rack start --router-https`), and where certificates come
    # from by ACME (`--acme-directory`, `--acme-email`; no directory: imported ones only).
    router_https: str | None = None
    acme_directory: str | None = None
    acme_email: str | None = None
    # The runtime that runs the apps (`rack start --runtime`): local, swarm, kubernetes.
    runtime: str = "local"
    # `rack start --registry HOST:PORT`: where container runtimes push images to and run them
    # from (shipmate.domain.images.image_ref); None on the local runtime.
    registry: str | None = None
    # The Docker engine of the swarm runtime (`--docker-host`; default: DOCKER_HOST).
    docker_host: str | None = None
    # The Kubernetes runtime: `--kubeconfig` (default $KUBECONFIG, else in-cluster) and
    # `--namespace-prefix` (default the rack's name): app A lives in namespace <prefix>-A.
    kubeconfig: str | None = None
    namespace_prefix: str | None = None

    @property
    def containers(self) -> bool:
        """Whether the rack builds each service into an image with its Docker engine and pushes
        it. Only the swarm runtime so far: a Kubernetes rack names images it does not build
        (docs/kubernetes.md)."""
        return self.runtime == "swarm"

    @property
    def rack_name(self) -> str:
        return self.home.name or "shipmate"

    @property
    def builds_dir(self) -> Path:
        return self.home / "builds"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def token_file(self) -> Path:
        return self.home / "token"

    @property
    def secret_key_file(self) -> Path:
        # Used unless SHIPMATE_SECRET_KEY is set (shipmate.store.crypto).
        return self.home / "secret.key"

    @property
    def rack_file(self) -> Path:
        # Written by `rack start`: where the API answers, so the local CLI finds it.
        return self.home / "rack.json"

    @property
    def log_file(self) -> Path:
        return self.home / "rack.log"

    @classmethod
    def from_env(cls) -> Settings:
        home = shipmate_home()
        url = os.environ.get("SHIPMATE_DATABASE_URL") or f"sqlite:///{home / 'shipmate.db'}"
        max_upload = int(os.environ.get("SHIPMATE_MAX_UPLOAD", str(1 << 30)))
        return cls(home=home, database_url=url, max_upload=max_upload)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_api_binding(
    address: str, tls_cert: str | None, tls_key: str | None, insecure: bool
) -> None:
    """Refuse to serve the API beyond this machine in clear text unless told to.

    Bearer tokens travel in every request: on a network they must be encrypted, by the rack
    (--tls-cert/--tls-key) or by a proxy in front of it (--insecure says that is the case).
    """
    if bool(tls_cert) != bool(tls_key):
        raise ShipmateError("--tls-cert and --tls-key go together: give both or neither")
    for path in (tls_cert, tls_key):
        if path and not os.access(path, os.R_OK):
            raise ShipmateError(f"cannot read {path}: give a readable PEM file")
    try:
        host, _ = split_host_port(address, any_port=True)
    except ValueError as exc:
        raise ShipmateError(f"--api {exc}") from None
    if is_loopback(host) or tls_cert or insecure:
        return
    raise ShipmateError(
        f"--api {address} is reachable from other machines and tokens would cross the network "
        "in clear text: give --tls-cert and --tls-key, or --insecure if a TLS proxy in front of "
        "the rack encrypts the traffic (see docs/SECURITY.md)"
    )
