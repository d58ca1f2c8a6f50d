"""The JSON API under ``/api/v1`` (documented in docs/api.md; a test checks every route is)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from hub.api import (  # noqa: E402,F401  (routes register on import)
    core,
    datasets,
    diagnosis,
    fleet,
    iterations,
    jobs,
    labeling,
    labeling_studio,
    mining,
    openapi,
    projects,
    versions,
)
