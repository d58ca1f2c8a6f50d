"""The mining pages: prepare a candidate pool, start a mining job (model × versions × algorithm × top-k), the
project's mining jobs with progress and ETA, and a mined version as a grid sorted by score."""

from __future__ import annotations

from flask import g, redirect, render_template, request, url_for
from werkzeug.routing import BuildError

from detkit import scoring
from hub.jobs.eta import eta_seconds
from hub.jobs.setup import backend_key, job_context
from hub.mining import submit_mining, submit_prepare
from hub.mining.catalog import algorithm_table
from hub.store import assets as asset_store
from hub.store import datasets as ds_store
from hub.store import jobs as jobs_store
from hub.store import mining as mining_store
from hub.store import models as models_store
from hub.store import projects as project_store
from hub.web import bp
from hub.web.iterations import _int
from hub.web.util import database, form_action, split_names, state

PAGE = 60


def _back(project_id: int, **_):
    return url_for("web.mining_page", project_id=project_id)


def _ctx():
    return job_context(state().settings, database())


@bp.get("/projects/<int:project_id>/mining")
def mining_page(project_id: int):
    project = project_store.get_project(database(), project_id)
    versions = [v for v in ds_store.list_versions(database(), project_id=project_id) if v["state"] == "ready"]
    jobs = [j for kind in ("mining", "mining_prepare")
            for j in jobs_store.list_jobs(database(), project_id=project_id, kind=kind)]
    jobs.sort(key=lambda j: j["created_at"], reverse=True)
    for j in jobs:
        j["eta_s"] = eta_seconds(j)
    return render_template("mining.html", project=project, section="mining", versions=versions,
                           models=models_store.list_models(database(), project_id), jobs=jobs,
                           algorithms=algorithm_table(), default_algorithm=scoring.DEFAULT_ALGORITHM)


@bp.post("/projects/<int:project_id>/mining/prepare")
@form_action(_back)
def mining_prepare(project_id: int):
    f = request.form
    near = _int(f, "near_dup_threshold")
    job = submit_prepare(
        _ctx(), project_id=project_id, version_ids=[int(v) for v in f.getlist("version_ids")],
        exclude_version_ids=[int(v) for v in f.getlist("exclude_version_ids")],
        near_dup_threshold=near if near is not None and near >= 0 else None,
        classes_in=split_names(f.get("classes_in")), classes_out=split_names(f.get("classes_out")),
        sample=_int(f, "sample"), seed=_int(f, "seed") or 0, chunk_size=_int(f, "chunk_size"),
        chunk_index=_int(f, "chunk_index") or 0, name=(f.get("name") or "").strip() or None,
        created_by=g.user["id"],
    )
    return redirect(url_for("web.job_page", job_id=job["id"]))


@bp.post("/projects/<int:project_id>/mining/start")
@form_action(_back)
def mining_start(project_id: int):
    from hub.training import register_builtin_image

    f = request.form
    register_builtin_image(database())
    job = submit_mining(
        _ctx(), model_id=_int(f, "model_id", True), stage=(f.get("stage") or "").strip() or None,
        version_ids=[int(v) for v in f.getlist("version_ids")], topk=_int(f, "topk", True),
        algorithm=f.get("algorithm") or scoring.DEFAULT_ALGORITHM, class_balanced="class_balanced" in f,
        pre_annotations="pre_annotations" in f, name=(f.get("name") or "").strip() or None,
        backend_key=backend_key(state().settings), created_by=g.user["id"], project_id=project_id,
    )
    return redirect(url_for("web.job_page", job_id=job["id"]))


def _label_url(project_id: int, version_id: int) -> str | None:
    """The labeling page's create form for this version, once the labeling pages exist."""
    try:
        return url_for("web.labeling_tasks", project_id=project_id, version_id=version_id)
    except BuildError:
        return None


@bp.get("/mining/versions/<int:version_id>")
def mined_version(version_id: int):
    v = ds_store.get_version(database(), version_id)
    project = project_store.get_project(database(), v["project_id"])
    page = max(1, request.args.get("page", 1, type=int))
    assets = mining_store.mined_assets(database(), version_id, offset=(page - 1) * PAGE, limit=PAGE)
    sizes = mining_store.asset_sizes(database(), [a["sha1"] for a in assets])
    boxes = asset_store.annotations_for(database(), version_id, [a["sha1"] for a in assets])
    for a in assets:
        a["width"], a["height"] = sizes.get(a["sha1"], (1, 1))
        a["boxes"] = [b for b in boxes.get(a["sha1"], []) if b["kind"] == "pred"]
    pages = max(1, -(-v["images"] // PAGE))
    return render_template("mined_version.html", project=project, section="mining", version=v, assets=assets,
                           page=page, pages=pages, label_url=_label_url(project["id"], version_id))
