#!/usr/bin/env bash
# Starts what the swarm runtime needs on this machine, as root, from nothing: Debian's Docker
# engine (its own data-root and socket), a base image made locally (debootstrap + docker
# import, cached under /var/cache/shipmate), Debian's registry on loopback, a one-node swarm.
# Nothing is pulled from a registry outside this machine. Every process it starts has a
# pidfile under $SHIPMATE_ENGINE_DIR; scripts/engine-down.sh stops them by pid.
# Prints the environment to use (DOCKER_HOST=..., SHIPMATE_REGISTRY=...), also in $DIR/env.
set -euo pipefail

dir=${SHIPMATE_ENGINE_DIR:-/var/lib/shipmate-engine}
cache=${SHIPMATE_IMAGE_CACHE:-/var/cache/shipmate}
registry=${SHIPMATE_REGISTRY:-127.0.0.1:5000}
base=local/debian:bookworm
mirror=${SHIPMATE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$dir" "$cache"
log() { echo "engine-up: $*" >&2; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v docker-registry >/dev/null || need+=(docker-registry)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian's client matches the engine (a newer static CLI may come first on PATH).
docker=/usr/bin/docker
export DOCKER_HOST="unix://$dir/docker.sock"

if ! alive "$dir/dockerd.pid"; then
  log "starting dockerd ($dir)"
  rm -f "$dir/docker.sock"
  setsid dockerd --data-root "$dir/root" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    -H "$DOCKER_HOST" --storage-driver=overlay2 >"$dir/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 100); do $docker version >/dev/null 2>&1 && break; sleep 0.2; done
  $docker version >/dev/null || { tail -20 "$dir/dockerd.log" >&2; exit 1; }
fi

if ! alive "$dir/registry.pid"; then
  log "starting the registry on $registry"
  cat >"$dir/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $dir/registry
  delete:
    enabled: true
http:
  addr: $registry
YML
  setsid docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 </dev/null &
  echo $! >"$dir/registry.pid"
  for _ in $(seq 50); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://$registry/v2/')" 2>/dev/null && break
    sleep 0.2
  done
fi

if [ "$($docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
  log "swarm init"
  $docker swarm init --advertise-addr 127.0.0.1 >/dev/null
fi

if ! $docker image inspect "$base" >/dev/null 2>&1; then
  tarball="$cache/debian-bookworm-python.tar"
  if [ ! -s "$tarball" ]; then
    log "making the base image with debootstrap (about a minute; cached in $tarball)"
    root=$(mktemp -d "$cache/root.XXXXXX")
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
      bookworm "$root" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
      { tail -20 "$dir/debootstrap.log" >&2; rm -rf "$root"; exit 1; }
    # TLS from here passes an intercepting proxy: trust what the host trusts.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
      chroot "$root" update-ca-certificates >/dev/null 2>&1 || true
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  log "importing $base"
  $docker import "$tarball" "$base" >/dev/null
fi

cat >"$dir/env" <<ENV
DOCKER_HOST=$DOCKER_HOST
SHIPMATE_REGISTRY=$registry
ENV
cat "$dir/env"
