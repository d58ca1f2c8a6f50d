#!/usr/bin/env bash
# Build ymir-edge's docker images without a registry (docs/images.md):
#   ymir-edge/hub:latest        docker/hub.Dockerfile       FROM ymir-edge/executor-base + ymir-edge[hub,train]
#                                                           (torch CPU: jobs run on the local backend)
#   ymir-edge/agent:latest      docker/agent.Dockerfile     FROM ymir-edge/debian-python + ymir-edge[agent]
#   ymir-edge/mosquitto:2       docker/mosquitto.Dockerfile FROM ymir-edge/debian-python + apt mosquitto
#   ymir-edge/executor:latest   executor/Dockerfile         (scripts/build_executor_image.sh)
# The python base is scripts/base_image.sh's debootstrapped Debian bookworm (cached). Each image's
# context is a staged folder: a wheelhouse (the ymir-edge wheel built from this tree + the deps of its
# extras that the base lacks, by pip download) and the files the Dockerfile copies.
#
# Usage: DOCKER_HOST=unix:///path/docker.sock scripts/build_images.sh [hub|agent|mosquitto|executor|all ...]
#          [--agent-extras agent,openvino]   extras of the agent image (default: agent)
#          [--keep-going]                    build the other targets when one fails
# Prints one built image name a line on stdout; logs go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
AGENT_EXTRAS=agent
KEEP=""
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --agent-extras) AGENT_EXTRAS="$2"; shift 2 ;;
    --keep-going) KEEP=1; shift ;;
    hub|agent|mosquitto|executor) targets+=("$1"); shift ;;
    all) targets+=(executor hub agent mosquitto); shift ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(executor hub agent mosquitto)

log() { echo "[images] $*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }
work=$(mktemp -d /tmp/ymir-images.XXXX)
trap 'rm -rf "$work"' EXIT

BASE=$(scripts/base_image.sh)

# The ymir-edge wheel, built once per run from a copy of this tree (tracked + untracked, not ignored),
# so the build leaves no build/ or egg-info behind in the checkout.
ymir_wheel() {
  if [[ ! -d "$work/ywheel" ]]; then
    mkdir -p "$work/src" "$work/ywheel"
    git ls-files -co --exclude-standard -z -- pyproject.toml README.md detkit converters executor agent hub \
      | tar --null -T - -c | tar -x -C "$work/src"
    "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$work/ywheel" "$work/src" >"$work/wheel.log" 2>&1 \
      || { log "building the ymir-edge wheel failed: $(tail -5 "$work/wheel.log")"; return 1; }
  fi
  ls "$work"/ywheel/ymir_edge-*.whl
}

# stage <ctx> <base image> <extras>: ctx/wheels = the ymir-edge wheel + its deps for those extras,
# less the distributions the base image already has at the same version.
stage() {
  local ctx=$1 base=$2 extras=$3 whl
  whl=$(ymir_wheel) || return 1
  mkdir -p "$ctx/wheels"
  cp "$whl" "$ctx/wheels/"
  "$PY" -m pip download -q -d "$ctx/wheels" --only-binary=:all: "$whl[$extras]" >"$work/pip.log" 2>&1 \
    || { log "pip download failed: $(grep -v '^WARNING' "$work/pip.log" | tail -5)"; return 1; }
  docker run --rm --network none "$base" python3 -m pip list --format=freeze 2>/dev/null >"$ctx/base.txt" || true
  "$PY" - "$ctx" <<'PY'
import re, sys
from pathlib import Path
ctx = Path(sys.argv[1])
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
have = {tuple(map(str.strip, line.split("=="))) for line in (ctx / "base.txt").read_text().splitlines() if "==" in line}
have = {(norm(n), v) for n, v in have}
for whl in (ctx / "wheels").glob("*.whl"):
    name, version = whl.name.split("-")[:2]
    if (norm(name), version) in have:
        whl.unlink()
(ctx / "base.txt").unlink()
PY
}

build() {  # build <tag> <dockerfile> <ctx> [docker build args...]
  local tag=$1 file=$2 ctx=$3 t0=$SECONDS
  shift 3
  cp "$file" "$ctx/Dockerfile" || return 1
  log "building $tag ($(du -sh "$ctx" | cut -f1) context)"
  docker build -q -t "$tag" "$@" "$ctx" >"$work/build.log" 2>&1 \
    || { log "docker build $tag failed: $(tail -15 "$work/build.log")"; return 1; }
  log "built $tag in $((SECONDS - t0)) s: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
}

# (functions run under `if`, where set -e is off: each step says `|| return 1`)
build_hub() {
  local ctx="$work/hub" base
  mkdir -p "$ctx/docker" && cp docker/hub-entrypoint.sh "$ctx/docker/"
  # FROM the executor's base (python + torch CPU from the local wheel, numpy, onnx...): the torch
  # layer is unpacked once for both images, and the hub's wheelhouse holds only what that base lacks
  base=$(scripts/build_executor_image.sh --base-only) || return 1
  stage "$ctx" "$base" hub,train || return 1
  build ymir-edge/hub:latest docker/hub.Dockerfile "$ctx" --build-arg BASE="$base"
}

build_agent() {
  local ctx="$work/agent"
  mkdir -p "$ctx"
  stage "$ctx" "$BASE" "$AGENT_EXTRAS" || return 1
  build ymir-edge/agent:latest docker/agent.Dockerfile "$ctx" --build-arg BASE="$BASE" --build-arg EXTRAS="$AGENT_EXTRAS"
}

build_mosquitto() {
  local ctx="$work/mosquitto"
  mkdir -p "$ctx"
  # apt inside the build reaches deb.debian.org through the host's network (the engine may have no bridge)
  build ymir-edge/mosquitto:2 docker/mosquitto.Dockerfile "$ctx" --network host --build-arg BASE="$BASE"
}

build_executor() { scripts/build_executor_image.sh >/dev/null; }

status=0
declare -A done_=()
for t in "${targets[@]}"; do
  [[ -n "${done_[$t]:-}" ]] && continue
  done_[$t]=1
  if "build_$t"; then
    case "$t" in
      hub) echo ymir-edge/hub:latest ;; agent) echo ymir-edge/agent:latest ;;
      mosquitto) echo ymir-edge/mosquitto:2 ;; executor) echo ymir-edge/executor:latest ;;
    esac
  else
    log "building $t failed"; status=1
    [[ -n "$KEEP" ]] || exit 1
  fi
done
# a rebuilt image leaves its predecessor dangling; with vfs each one is a full copy
docker image prune -f >/dev/null 2>&1 || true
exit $status
