# A Mosquitto 2 broker from Debian's package, for hosts that cannot pull eclipse-mosquitto:2.
#
#   scripts/build_images.sh mosquitto     # docker build --network host: apt needs deb.debian.org
#
# Same layout as eclipse-mosquitto:2 (/mosquitto/config/mosquitto.conf, /mosquitto/data), so
# compose.yaml mounts docker/mosquitto.conf into either. BASE: any Debian bookworm image.
# Metadata first, then one RUN: see docker/hub.Dockerfile (classic builder on vfs).
ARG BASE=debian:bookworm-slim
FROM ${BASE}

EXPOSE 1883
CMD ["mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mosquitto \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
    && mkdir -p /mosquitto/config /mosquitto/data /mosquitto/log \
    && printf 'listener 1883\nallow_anonymous true\npersistence true\npersistence_location /mosquitto/data/\n' \
       > /mosquitto/config/mosquitto.conf \
    && chown -R mosquitto: /mosquitto/data /mosquitto/log
VOLUME /mosquitto/data
