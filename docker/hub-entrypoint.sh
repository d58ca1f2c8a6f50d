#!/bin/sh
# Entrypoint of the hub image: before `ymir-hub serve` or `ymir-hub worker`, create the workspace in
# $YMIR_HOME when it has no hub.db yet, with an admin user whose password is $YMIR_ADMIN_PASSWORD
# (or generated and printed once, in the container's log). Any other command runs as given.
set -e
home="${YMIR_HOME:-/data}"
if [ "$1" = ymir-hub ] && { [ "$2" = serve ] || [ "$2" = worker ]; } && [ ! -f "$home/hub.db" ]; then
  if [ -n "${YMIR_ADMIN_PASSWORD:-}" ]; then
    ymir-hub init --admin-user "${YMIR_ADMIN_USER:-admin}" --admin-password "$YMIR_ADMIN_PASSWORD"
  else
    ymir-hub init --admin-user "${YMIR_ADMIN_USER:-admin}"
  fi
fi
exec "$@"
