#!/usr/bin/env bash
# Stops what scripts/engine-up.sh started, by the pids it wrote: the swarm's services first
# (their containers die with dockerd anyway), then dockerd and the registry. Its data stays
# under $SHIPMATE_ENGINE_DIR unless --purge; the cached base image under /var/cache stays.
set -euo pipefail
dir=${SHIPMATE_ENGINE_DIR:-/var/lib/shipmate-engine}
stop() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pidfile"
}
if [ -S "$dir/docker.sock" ] && [ -f "$dir/dockerd.pid" ]; then
  DOCKER_HOST="unix://$dir/docker.sock" /usr/bin/docker service rm \
    $(DOCKER_HOST="unix://$dir/docker.sock" /usr/bin/docker service ls -q) >/dev/null 2>&1 || true
fi
stop "$dir/dockerd.pid"
stop "$dir/registry.pid"
if [ "${1:-}" = --purge ]; then
  # dockerd's overlay mounts are gone once it has stopped.
  rm -rf "$dir"
fi
