"""mining pages (routes register on import)."""

from hub.web import bp  # noqa: F401
