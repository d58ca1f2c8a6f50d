#!/usr/bin/env bash
# Set up and run every test: scripts/test.sh [pytest args...]
# Installs what is missing (scripts/setup.sh), starts a private dockerd when it can (the docker tests
# skip, saying why, when it can't), lints, then runs the whole suite, slow tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all

# A private docker engine for the DockerBackend tests (see scripts/dockerd.sh); optional.
if [[ -z "${YMIR_TEST_DOCKER_HOST:-}" ]] && [[ -x scripts/dockerd.sh ]]; then
  if sock=$(scripts/dockerd.sh start 2>/tmp/ymir-dockerd.err); then
    export YMIR_TEST_DOCKER_HOST="unix://$sock"
    trap 'scripts/dockerd.sh stop >/dev/null 2>&1 || true' EXIT
  else
    echo "[test] no docker engine: $(tail -1 /tmp/ymir-dockerd.err)" >&2
  fi
fi

.venv/bin/ruff check .
exec .venv/bin/python -m pytest -p no:cacheprovider --durations=15 "$@"
