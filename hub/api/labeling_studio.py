"""Label Studio's side of the labeling API: token-protected image files for its tasks (routes register on import)."""

from hub.api import bp  # noqa: F401
