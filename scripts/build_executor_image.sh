#!/usr/bin/env bash
# Build the built-in executor as a docker image without a registry:
#   1. ymir-edge/debian-python:bookworm  — `debootstrap --variant=minbase` + python3, `docker import`ed (cached)
#   2. ymir-edge/executor-base:latest    — that + the executor's wheels (torch CPU, numpy, pillow, lxml, onnx...)
#                                          from a local wheelhouse made with pip download (cached)
#   3. ymir-edge/executor:latest         — executor/Dockerfile FROM the base (the image the hub registers)
# Usage: DOCKER_HOST=unix:///path/docker.sock scripts/build_executor_image.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."
FORCE="${1:-}"
PY=.venv/bin/python
BASE=ymir-edge/debian-python:bookworm
DEPS=ymir-edge/executor-base:latest
IMAGE=ymir-edge/executor:latest
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { echo "[executor-image] $*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

if ! have "$BASE"; then
  command -v debootstrap >/dev/null || { log "debootstrap is not installed"; exit 1; }
  root=$(mktemp -d /tmp/ymir-rootfs.XXXX)
  log "debootstrap bookworm into $root (about 90 s)"
  debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates bookworm "$root" "$MIRROR" >/tmp/ymir-debootstrap.log 2>&1 \
    || { log "debootstrap failed: $(tail -3 /tmp/ymir-debootstrap.log)"; rm -rf "$root"; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$root"
fi

ctx=$(mktemp -d /tmp/ymir-exec-ctx.XXXX)
trap 'rm -rf "$ctx"' EXIT
if [[ "$FORCE" == --force ]] || ! have "$DEPS"; then
  log "collecting wheels"
  mkdir -p "$ctx/wheels"
  "$PY" -m pip download -q -d "$ctx/wheels" --only-binary=:all: "torch==2.13.0" "numpy>=1.26,<2.6" "pillow>=10" \
    "lxml>=5" "pyyaml>=6" "onnx>=1.16" >/dev/null
  cat > "$ctx/Dockerfile" <<'DOCKER'
FROM ymir-edge/debian-python:bookworm
COPY wheels /wheels
RUN python3 -m pip install --no-index --find-links /wheels --break-system-packages --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels
DOCKER
  log "building $DEPS"
  docker build -q -t "$DEPS" "$ctx" >/dev/null
fi

log "building $IMAGE"
docker build -q -f executor/Dockerfile --build-arg BASE="$DEPS" \
  --build-arg PIP_EXTRA="--no-index --break-system-packages" -t "$IMAGE" . >/dev/null
# an earlier build of the image is now dangling; with vfs each one holds a full 1.4 GB copy
docker image prune -f >/dev/null 2>&1 || true
echo "$IMAGE"
