#!/usr/bin/env bash
# Instructions per request of one router process (valgrind's callgrind), for checkouts given
# as arguments, alternating, ROUNDS times each: a count that other work on the machine does
# not change, unlike requests/s or CPU time.
#
#     bench/router_callgrind.sh /work/wt/before-router .          # ROUNDS=2 DURATION=10
#
# Each checkout's router daemon (its own .venv, --workers 1) runs under callgrind in front of
# HAProxy answering a small JSON body (as bench/router.py); wrk warms it up for 5 s, the
# counters are zeroed (callgrind_control -z), wrk loads it for DURATION seconds with 4 connections, the
# counters are dumped, and the instructions are divided by the requests wrk completed (the
# router's idle wake-ups, a few hundred thousand instructions a second, are included: the
# same for both). Needs valgrind, wrk, haproxy, curl.
set -euo pipefail
ROUNDS=${ROUNDS:-2}
SECONDS_EACH=${DURATION:-10}
work=$(mktemp -d /tmp/shipmate-callgrind-XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
backend=$(free_port)
cat >"$work/backend.cfg" <<EOF
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend backend
  bind 127.0.0.1:$backend
  http-request return status 200 content-type application/json string "{\"app\": \"bench\", \"release\": \"RABCDEFGHI\", \"greeting\": \"hello\", \"pid\": 4242}\n"
EOF
haproxy -db -f "$work/backend.cfg" >/dev/null 2>&1 &
haproxy_pid=$!
trap 'kill $haproxy_pid 2>/dev/null || true' EXIT

one() {
  local checkout name home port vpid reqs ir
  checkout=$(cd "$1" && pwd)
  name=$(basename "$checkout")-$2
  home="$work/$name-home"
  mkdir -p "$home"
  port=$(free_port)
  (cd "$checkout" && PYTHONPATH=$checkout exec valgrind --tool=callgrind \
    --callgrind-out-file="$work/$name.out" "$checkout/.venv/bin/python" -m shipmate.router \
    --home "$home" --listen "127.0.0.1:$port" --workers 1) >"$work/$name.log" 2>&1 &
  vpid=$!
  for _ in $(seq 600); do [ -e "$home/router.json" ] && break; sleep 0.1; done
  curl -s --unix-socket "$home/router.sock" -X PUT \
    -d "{\"backends\": [\"127.0.0.1:$backend\"]}" http://router/routes/bench/web >/dev/null
  wrk -t1 -c4 -d5s -H "Host: web.bench.localhost" "http://127.0.0.1:$port/" >/dev/null
  callgrind_control -z $vpid >/dev/null
  wrk -t1 -c4 -d"${SECONDS_EACH}s" -H "Host: web.bench.localhost" "http://127.0.0.1:$port/" \
    >"$work/$name.wrk"
  callgrind_control -d $vpid >/dev/null
  sleep 1
  kill -TERM $vpid
  wait $vpid || true
  reqs=$(grep -oP '\d+(?= requests in)' "$work/$name.wrk")
  ir=$(grep -m1 -oP '^(summary|totals): \K\d+' "$(ls -t "$work/$name.out".* | head -1)")
  echo "$checkout round $2: $reqs requests, $((ir / reqs)) instructions per request"
}

for round in $(seq "$ROUNDS"); do
  for checkout in "$@"; do
    one "$checkout" "$round"
  done
done
