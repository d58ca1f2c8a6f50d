"""Server-rendered pages (Jinja templates in ``hub/templates``, a little plain JS in ``hub/static``).

The navigation follows the YMIR guide: Projects -> Datasets, Dataset analysis, Model training,
Models, Diagnosis, Iteration; Classes; Images (admin); Deployment. Sections not built yet are
served by honest "not available yet" placeholders; a module that builds one registers a more
specific route (static URL parts win over ``<section>``) and the page appears in place.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("web", __name__)

#: project sub-pages: (section slug, label); "datasets" is the project page itself
PROJECT_SECTIONS = [
    ("datasets", "Datasets"),
    ("analysis", "Dataset analysis"),
    ("training", "Model training"),
    ("models", "Models"),
    ("diagnosis", "Diagnosis"),
    ("mining", "Data mining"),
    ("labeling", "Data labeling"),
    ("iteration", "Iteration"),
]
#: top-level pages: (endpoint, label, admin only)
TOP_NAV = [
    ("web.projects", "Projects", False),
    ("web.classes", "Classes", False),
    ("web.jobs_page", "Jobs", False),
    ("web.images_admin", "Images", True),
    ("web.deployment", "Deployment", False),
]

from hub.web import (  # noqa: E402,F401  (routes register on import)
    datasets,
    diagnosis,
    fleet,
    iterations,
    labeling,
    mining,
    pages,
    training,
)


@bp.app_context_processor
def _nav_context() -> dict:
    return {"top_nav": TOP_NAV, "project_sections": PROJECT_SECTIONS}


@bp.app_template_filter("duration")
def _format_duration(seconds) -> str:
    """Seconds as ``42 s`` / ``3 min 5 s`` / ``1 h 2 min``."""
    s = int(round(float(seconds or 0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {(s % 3600) // 60} min"


@bp.app_template_filter("ts")
def _format_ts(value) -> str:
    """Unix time as ``YYYY-MM-DD HH:MM`` UTC (``–`` for none)."""
    import datetime as _dt

    if not value:
        return "–"
    return _dt.datetime.fromtimestamp(float(value), _dt.UTC).strftime("%Y-%m-%d %H:%M")
