#!/usr/bin/env bash
# The whole loop on embedded defaults, end to end (scripts/demo_loop.py tells each stage as it runs it):
#   set up .venv -> workspace -> hub (embedded MQTT broker, local job backend) -> sample data -> train ->
#   evaluate on held-out images -> convert to int8 ONNX + OpenVINO int8 -> provision a device and start its
#   agent -> deploy -> held-out images to the agent's /v1/detect -> predictions and selected frames back ->
#   mine the top-k of those frames -> summary table, the hub's URL and login (the hub stays up; Ctrl-C).
# Idempotent: a second run reuses the workspace, data, model, packages, device and algorithm it finds.
# Usage: scripts/demo.sh [--quick]   (--quick: small data, short training, about 3 minutes)
# Settings: YMIR_HOME (workspace, default ./ymir-workplace), DEMO_PORT (hub, 8080), DEMO_MQTT_PORT (18830),
# DEMO_AGENT_PORT (18090), DEMO_EPOCHS (training epochs), DEMO_SERVE=0 to stop after the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== setup: .venv with ymir-edge[all] (scripts/setup.sh)"
scripts/setup.sh all
exec .venv/bin/python scripts/demo_loop.py "$@"
