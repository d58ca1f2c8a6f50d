#!/usr/bin/env bash
# Build the built-in executor as a docker image without a registry:
#   1. ymir-edge/debian-python:bookworm  — scripts/base_image.sh: debootstrapped Debian + python3 (cached)
#   2. ymir-edge/executor-base:latest    — that + the executor's wheels (torch CPU, numpy, pillow, lxml, onnx...)
#                                          from a local wheelhouse made with pip download (cached)
#   3. ymir-edge/executor:latest         — executor/Dockerfile FROM the base (the image the hub registers)
# The hub image (scripts/build_images.sh hub) starts FROM image 2 too, so torch is unpacked once.
# Usage: DOCKER_HOST=unix:///path/docker.sock scripts/build_executor_image.sh [--force] [--base-only]
#   --force      rebuild image 2 (new wheels)      --base-only  stop after image 2 and print its name
set -euo pipefail
cd "$(dirname "$0")/.."
FORCE=""
BASE_ONLY=""
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=--force ;;
    --base-only) BASE_ONLY=1 ;;
    *) echo "unknown argument: $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
PY=.venv/bin/python
DEPS=ymir-edge/executor-base:latest
IMAGE=ymir-edge/executor:latest
log() { echo "[executor-image] $*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

scripts/base_image.sh >/dev/null  # the shared debootstrapped base (cached)

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
if [[ -n "$BASE_ONLY" ]]; then echo "$DEPS"; exit 0; fi

log "building $IMAGE"
docker build -q -f executor/Dockerfile --build-arg BASE="$DEPS" \
  --build-arg PIP_EXTRA="--no-index --break-system-packages" -t "$IMAGE" . >/dev/null
# an earlier build of the image is now dangling; with vfs each one holds a full 1.4 GB copy
docker image prune -f >/dev/null 2>&1 || true
echo "$IMAGE"
