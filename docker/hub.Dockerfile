# The ymir-edge hub: web pages, JSON API, CLI, job runner — with the built-in executor's training
# deps (torch CPU), so jobs run on the default local backend inside this container.
#
#   scripts/build_images.sh hub          # the way to build it (no registry needed)
#
# Build context: a folder scripts/build_images.sh stages — wheels/ (a wheelhouse: the ymir-edge wheel
# and every dependency of ymir-edge[EXTRAS] the base lacks) and docker/hub-entrypoint.sh — not the
# repository root. BASE is any image with python3 >= 3.11 and pip (python:3.11-slim where a registry
# is reachable; here ymir-edge/debian-python:bookworm).
#
# Layout for the classic builder on the vfs storage driver: every instruction makes a container, and
# a container is a full copy of the image so far; so all metadata comes first (cheap, on the small
# base) and only two instructions, COPY and RUN, follow. Changes a RUN makes under a VOLUME declared
# before it are dropped: the RUN writes nothing under /data.
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    YMIR_HOME=/data \
    YMIR_MQTT_URL=""
# hub.db, assets/, models/, jobs/ ... live here; the entrypoint runs `ymir-hub init` when hub.db is missing.
VOLUME /data
WORKDIR /data
EXPOSE 8080
ENTRYPOINT ["ymir-hub-entrypoint"]
CMD ["ymir-hub", "serve", "--host", "0.0.0.0", "--port", "8080"]

ARG EXTRAS=hub,train
COPY . /build
RUN python3 -m pip install --no-index --find-links /build/wheels "ymir-edge[${EXTRAS}]" \
    && install -m 0755 /build/docker/hub-entrypoint.sh /usr/local/bin/ymir-hub-entrypoint \
    && rm -rf /build
