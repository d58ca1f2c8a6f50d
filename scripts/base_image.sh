#!/usr/bin/env bash
# The local python base every ymir-edge image starts FROM, made without a registry:
#   ymir-edge/debian-python:bookworm — `debootstrap --variant=minbase` bookworm + python3, pip and
#   CA certificates, `docker import`ed as one layer. Cached: a second call only checks it exists.
# Usage: DOCKER_HOST=unix:///path/docker.sock scripts/base_image.sh   (prints the image name)
# Used by scripts/build_executor_image.sh and scripts/build_images.sh; DEBIAN_MIRROR overrides the mirror.
set -euo pipefail
BASE=ymir-edge/debian-python:bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { echo "[base-image] $*" >&2; }

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { log "debootstrap is not installed"; exit 1; }
  root=$(mktemp -d /tmp/ymir-rootfs.XXXX)
  trap 'rm -rf "$root"' EXIT
  log "debootstrap bookworm into $root (about 90 s)"
  debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates bookworm "$root" "$MIRROR" \
    >/tmp/ymir-debootstrap.log 2>&1 \
    || { log "debootstrap failed: $(tail -3 /tmp/ymir-debootstrap.log)"; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$BASE" >/dev/null
fi
echo "$BASE"
