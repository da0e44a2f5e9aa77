#!/usr/bin/env bash
# Installs shipmate into .venv, starts a local rack, deploys the example app, changes its
# environment, rolls back, and prints the release list. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

# A runtime asked for and not there is said, not ignored. --down stops what a run started:
# the rack, its apps, its router and (swarm) every engine process of scripts/engine-up.sh.
runtime=local
down=
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=${2:-}; shift 2 || shift ;;
    --runtime=*) runtime=${1#--runtime=}; shift ;;
    --down) down=1; shift ;;
    *) echo "ERROR: unknown argument $1: usage: ./quickstart.sh [--runtime local|swarm] [--down]" >&2; exit 2 ;;
  esac
done
if [ "$runtime" != local ] && [ "$runtime" != swarm ]; then
  echo "ERROR: runtime '$runtime' is not available yet: only 'local' and 'swarm' are (./quickstart.sh)" >&2
  exit 2
fi
if [ -n "$down" ]; then
  if [ -x .venv/bin/shipmate ]; then
    .venv/bin/shipmate apps delete hello >/dev/null 2>&1 || true
    .venv/bin/shipmate rack stop --all || true
  fi
  [ -x scripts/engine-down.sh ] && scripts/engine-down.sh
  exit 0
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "ERROR: shipmate needs Python 3.11 or newer as $python (set PYTHON=...)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv 2>/dev/null; then
    # Debian ships venv separately.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf .venv && "$python" -m venv .venv
    else
      echo "ERROR: '$python -m venv' failed: install python3-venv (apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
export PATH="$PWD/.venv/bin:$PATH"

# `shipmate rack` answers for a stopped rack too (Status stopped): ask for its status.
status=$(shipmate rack --json 2>/dev/null | python -c 'import json,sys; print(json.load(sys.stdin).get("status", ""))' || true)
start_args=()
if [ "$runtime" = swarm ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "ERROR: --runtime swarm installs and starts a Docker engine: run as root" >&2
    exit 1
  fi
  # The engine, a registry on loopback, a one-node swarm and a locally made base image.
  engine_env=$(scripts/engine-up.sh)
  docker_host=$(echo "$engine_env" | sed -n 's/^DOCKER_HOST=//p')
  registry=$(echo "$engine_env" | sed -n 's/^SHIPMATE_REGISTRY=//p')
  start_args=(--runtime swarm --registry "$registry" --docker-host "$docker_host")
fi
if [ "$status" != "running" ]; then
  shipmate rack start --detach "${start_args[@]}"
fi
shipmate apps info -a hello >/dev/null 2>&1 || shipmate apps create hello
shipmate deploy examples/hello -a hello
first=$(shipmate releases -a hello --json | python -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
shipmate env set FOO=bar --promote -a hello
shipmate releases rollback "$first" -a hello
shipmate releases -a hello
router=$(shipmate rack | awk '$1 == "Router" {print $2}')
echo
echo "The example app answers through the router:"
curl -s -H "Host: web.hello.localhost" "$router/" || python -c "import urllib.request as u; print(u.urlopen(u.Request('$router/', headers={'Host': 'web.hello.localhost'})).read().decode())"
echo
echo "The rack keeps running: try 'export PATH=\$PWD/.venv/bin:\$PATH; shipmate releases -a hello'; stop it and its apps with 'shipmate rack stop --all'."
