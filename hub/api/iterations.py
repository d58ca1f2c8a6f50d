"""iterations JSON API (routes register on import)."""

from hub.api import bp  # noqa: F401
