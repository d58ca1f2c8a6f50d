# The ymir-edge device agent, slim: ymir-edge[agent] (onnxruntime, paho-mqtt, flask, waitress) and no
# torch. EXTRAS=agent,openvino adds the OpenVINO runtime (then allow it: YMIR_AGENT_ALLOWED_BACKENDS).
#
#   scripts/build_images.sh agent                              # onnxruntime only
#   scripts/build_images.sh agent --agent-extras agent,openvino
#
# Build context: the folder scripts/build_images.sh stages (wheels/: the ymir-edge wheel + its deps),
# not the repository root. Every setting comes from YMIR_AGENT_* variables (docs/agent.md); the image
# sets the store and the HTTP bind address, the rest (device id, token, hub and broker URLs) is yours.
# Metadata first, then COPY + RUN: see docker/hub.Dockerfile (classic builder on vfs).
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    YMIR_AGENT_STORE_DIR=/data \
    YMIR_AGENT_HTTP_BIND=0.0.0.0:8080
# model slots, downloads, applied state, outbox, logs
VOLUME /data
WORKDIR /data
EXPOSE 8080
CMD ["ymir-agent", "run"]

ARG EXTRAS=agent
COPY . /build
RUN python3 -m pip install --no-index --find-links /build/wheels "ymir-edge[${EXTRAS}]" && rm -rf /build
