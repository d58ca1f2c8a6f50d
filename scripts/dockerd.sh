#!/usr/bin/env bash
# A private docker engine for tests: scripts/dockerd.sh start|stop|status
# start prints the socket path once the engine answers. vfs storage and no networking, as the
# machines here allow (see DESIGN.md); state under ${YMIR_DOCKER_ROOT:-/tmp/ymir-docker}.
set -euo pipefail
ROOT="${YMIR_DOCKER_ROOT:-/tmp/ymir-docker}"
SOCK="$ROOT/docker.sock"
PID="$ROOT/dockerd.pid"

running() { [[ -f "$PID" ]] && kill -0 "$(cat "$PID")" 2>/dev/null; }

case "${1:-status}" in
  start)
    if ! command -v dockerd >/dev/null 2>&1; then echo "dockerd is not installed" >&2; exit 1; fi
    if [[ $(id -u) != 0 ]]; then echo "dockerd needs root" >&2; exit 1; fi
    mkdir -p "$ROOT/data" "$ROOT/exec"
    if ! running; then
      nohup dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none \
        --data-root "$ROOT/data" --exec-root "$ROOT/exec" --pidfile "$PID" \
        -H "unix://$SOCK" >"$ROOT/dockerd.log" 2>&1 &
    fi
    for _ in $(seq 1 300); do  # up to 60 s: a cold engine on a slow machine
      if DOCKER_HOST="unix://$SOCK" docker version >/dev/null 2>&1; then echo "$SOCK"; exit 0; fi
      sleep 0.2
    done
    echo "dockerd did not answer; see $ROOT/dockerd.log: $(tail -2 "$ROOT/dockerd.log" 2>/dev/null)" >&2
    exit 1
    ;;
  stop)
    # wait for it to go: a start right after a stop must not meet the old engine's containerd
    if running; then
      pid=$(cat "$PID"); kill "$pid"
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    ;;
  status)
    if running; then echo "running: $SOCK"; else echo "stopped"; exit 1; fi
    ;;
esac
