#!/usr/bin/env bash
# Set up (idempotently) what ymir-edge needs on a fresh Debian machine with Python >= 3.11:
#   - system packages (mosquitto, chromium, docker.io, busybox-static, debootstrap, docker-compose) when missing and we are root;
#   - .venv at the repo root with the project installed editable with the requested extras.
# Usage: scripts/setup.sh [EXTRAS]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-all}"

log() { echo "[setup] $*" >&2; }

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]] || need_apt+=(mosquitto)
if [[ "$EXTRAS" == all || "$EXTRAS" == *dev* ]]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
  [[ -x /bin/busybox ]] || need_apt+=(busybox-static)
  command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
  command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need_apt+=(docker-compose)
fi
if ((${#need_apt[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    log "missing ${need_apt[*]} and cannot apt-get (not root): the tests that need them will skip"
  fi
fi

PY="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.ymir-setup-$(sha256sum pyproject.toml | cut -c1-16)-$EXTRAS"
if [[ ! -f "$stamp" ]]; then
  log "installing ymir-edge[$EXTRAS] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # torch is pinned (CPU wheel here); installing it first keeps the resolver from choosing another.
  if [[ "$EXTRAS" == all || "$EXTRAS" == *train* ]]; then
    .venv/bin/python -m pip install -q "torch==2.13.0"
  fi
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  if [[ "$EXTRAS" == all || "$EXTRAS" == *dev* ]]; then  # the bounded fuzz run; its tests skip without it
    .venv/bin/python -m pip install -q "atheris>=2.3" || log "atheris did not install: the fuzz tests will skip"
  fi
  rm -f .venv/.ymir-setup-*
  touch "$stamp"
fi
# Label Studio (the labeling backend's real server in the tests) has heavy pins (Django & co): its own venv,
# never .venv. Its tests skip with the reason where it cannot be installed.
# sentry-sdk 3 dropped options Label Studio 1.23.2 passes at start (it asks only for >=2.16): held below 3.
LS_VERSION="1.23.2"
LS_STAMP=".venvs/label-studio/.ymir-label-studio-$LS_VERSION-sentry2"
if [[ "$EXTRAS" == all || "$EXTRAS" == *dev* ]] && [[ ! -f "$LS_STAMP" ]]; then
  log "installing label-studio==$LS_VERSION into .venvs/label-studio (its own pins)"
  if { [[ -x .venvs/label-studio/bin/python ]] || "$PY" -m venv .venvs/label-studio; } &&
     .venvs/label-studio/bin/python -m pip install -q --upgrade pip >/dev/null &&
     .venvs/label-studio/bin/python -m pip install -q "label-studio==$LS_VERSION" "sentry-sdk>=2.16,<3"; then
    touch "$LS_STAMP"
  else
    log "label-studio did not install: the Label Studio server tests will skip"
  fi
fi
# The agent's OIP peers in scripts/bench/agent_http.py (MLServer, KServe) have heavy pins of their own (FastAPI,
# gRPC, pandas, kubernetes...): each in its own venv, never .venv, with .venv's onnxruntime so all serve the same
# bits; never torch. A peer that does not install is logged and skipped by the bench and its smoke test.
ORT_VERSION="$(.venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null || true)"
peer_venv() {  # peer_venv NAME PACKAGE==VERSION [MORE PINS...]
  local venv=".venvs/$1" stamp=".venvs/$1/.ymir-${2/==/-}"
  [[ -f "$stamp" && -f "$venv/.ymir-onnxruntime-$ORT_VERSION" ]] && return 0
  log "installing $2 and onnxruntime==$ORT_VERSION into $venv (its own pins)"
  rm -f "$venv"/.ymir-*
  if { [[ -x "$venv/bin/python" ]] || "$PY" -m venv "$venv"; } &&
     "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null &&
     "$venv/bin/python" -m pip install -q "$2" "${@:3}" "onnxruntime==$ORT_VERSION" &&
     ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    touch "$stamp" "$venv/.ymir-onnxruntime-$ORT_VERSION"
  else
    log "$2 did not install (or pulled torch) into $venv: agent_http.py skips that peer"
  fi
}
if [[ "$EXTRAS" == all || "$EXTRAS" == *dev* ]] && [[ -n "$ORT_VERSION" ]]; then
  # uvloop 0.22 raises from asyncio.get_event_loop() in MLServer 1.7.1's inference worker processes
  peer_venv mlserver "mlserver==1.7.1" "uvloop<0.22"
  peer_venv kserve "kserve==0.21.0"
fi
log "ready: $(.venv/bin/python --version)"
