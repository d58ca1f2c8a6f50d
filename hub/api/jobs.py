"""Jobs, training, inference, mining, models and executor images (JSON API)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from flask import g, jsonify, request, send_file

from detkit.errors import BadInput
from hub.api import bp
from hub.api.util import body, check_int, database, get_field, int_list, state, str_list
from hub.auth import require_admin
from hub.jobs.setup import backend_key, job_context
from hub.models_io import export_model, import_model, model_summary
from hub.store import datasets as datasets_store
from hub.store import executor_images as images_store
from hub.store import jobs as jobs_store
from hub.store import models as models_store
from hub.store import projects as projects_store
from hub.training import (
    BUILTIN_IMAGE,
    register_builtin_image,
    submit_inference,
    submit_training,
    training_history,
)


def _ctx():
    return job_context(state().settings, database())


def _job_public(job: dict) -> dict:
    from hub.jobs.eta import eta_seconds

    return {**{k: v for k, v in job.items() if k not in ("owner", "handle")}, "eta_s": eta_seconds(job)}


@bp.get("/jobs")
def list_jobs():
    project = request.args.get("project")
    pid = projects_store.find_project(database(), project)["id"] if project else None
    st = request.args.get("state")
    jobs = jobs_store.list_jobs(database(), project_id=pid, states=(st,) if st else None,
                                kind=request.args.get("kind"))
    return jsonify({"jobs": [_job_public(j) for j in jobs]})


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    job = _job_public(jobs_store.get_job(database(), job_id))
    job["monitor"] = jobs_store.monitor_history(database(), job_id)
    return jsonify(job)


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str):
    return jsonify(_job_public(jobs_store.request_cancel(database(), job_id)))


@bp.get("/jobs/<job_id>/logs")
def job_logs(job_id: str):
    jobs_store.get_job(database(), job_id)
    path = Path(state().settings.home) / "jobs" / job_id / "job.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    tail = request.args.get("tail", type=int)
    if tail:
        text = "\n".join(text.splitlines()[-tail:])
    return jsonify({"job_id": job_id, "log": text})


@bp.post("/projects/<ref>/train")
def train(ref: str):
    data = body()
    project = projects_store.find_project(database(), ref)
    register_builtin_image(database())
    config = get_field(data, "config", dict, default={})
    job = submit_training(
        _ctx(), project_id=project["id"],
        train_version_id=get_field(data, "train_version_id", int, required=True),
        val_version_id=get_field(data, "val_version_id", int, required=True),
        image=get_field(data, "image", str, default=BUILTIN_IMAGE), targets=str_list(data, "targets"),
        config=config, pretrained_model_id=get_field(data, "pretrained_model_id", int),
        pretrained_stage=get_field(data, "pretrained_stage", str), gpu_count=get_field(data, "gpu_count", int, default=0),
        backend_key=backend_key(state().settings), name=get_field(data, "name", str),
        timeout_s=get_field(data, "timeout_s", float), created_by=g.user["id"],
    )
    return jsonify(_job_public(job)), 202


@bp.get("/projects/<ref>/sample-balance")
def sample_balance(ref: str):
    """Positive/negative images per target class in a training version (the guide's step 3 button)."""
    projects_store.find_project(database(), ref)
    version_id = request.args.get("version", type=int)
    if version_id is None:
        raise BadInput("query parameter 'version' is required (an integer)")
    check_int(version_id, "query parameter 'version'")
    version = datasets_store.require_ready(database(), version_id)
    counts = datasets_store.class_counts(database(), version_id)["gt"]
    targets = [t for t in (request.args.get("classes") or "").split(",") if t] or sorted(counts)
    total = version["images"]
    rows = {t: {"positive": counts.get(t, {}).get("images", 0),
                "negative": total - counts.get(t, {}).get("images", 0)} for t in targets}
    return jsonify({"version_id": version_id, "images": total, "classes": rows})


def _predict(mode: str):
    data = body()
    register_builtin_image(database())
    jobs = []
    for model_id in int_list(data, "model_ids" if "model_ids" in data else "model_id"):
        jobs += submit_inference(_ctx(), model_id=model_id, version_ids=int_list(data, "version_ids"),
                                 stage=get_field(data, "stage", str), config=get_field(data, "config", dict, default={}),
                                 mode=mode, backend_key=backend_key(state().settings), created_by=g.user["id"])
    return jsonify({"jobs": [_job_public(j) for j in jobs]}), 202


@bp.post("/infer")
def infer():
    return _predict("infer")


@bp.post("/mine")
def mine():
    return _predict("mine")


@bp.get("/models")
def list_models():
    project = request.args.get("project")
    pid = projects_store.find_project(database(), project)["id"] if project else None
    return jsonify({"models": [model_summary(m) for m in models_store.list_models(database(), pid)]})


@bp.get("/models/<int:model_id>")
def get_model(model_id: int):
    return jsonify(models_store.get_model(database(), model_id))


@bp.post("/models/import")
def import_model_route():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadInput("multipart field 'file' (a .tar.gz or .onnx) is required")
    project = request.form.get("project")
    pid = projects_store.find_project(database(), project)["id"] if project else None
    suffix = ".onnx" if upload.filename.endswith(".onnx") else ".tar.gz"
    settings = state().settings
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
        path = Path(tmp) / f"{Path(upload.filename).name.split('.')[0] or 'model'}{suffix}"
        upload.save(path)
        classes = [c.strip() for c in (request.form.get("classes") or "").split(",") if c.strip()] or None
        model = import_model(database(), Path(settings.home), path, project_id=pid,
                             name=request.form.get("name") or None, class_names=classes,
                             image=request.form.get("image", ""))
    return jsonify(model_summary(model)), 201


@bp.get("/models/<int:model_id>/download")
def download_model(model_id: int):
    model = models_store.get_model(database(), model_id)
    settings = state().settings
    out = Path(settings.exports_dir) / f"model-{model_id}.tar.gz"
    export_model(Path(settings.home), model, out)
    return send_file(out, as_attachment=True, download_name=f"{model['name']}-v{model['version']}.tar.gz")


@bp.get("/images")
def list_images():
    register_builtin_image(database())
    return jsonify({"images": images_store.list_images(database())})


@bp.post("/images")
@require_admin
def add_image():
    from hub.images import read_img_man

    data = body()
    name = get_field(data, "name", str, required=True)
    docker_ref = get_field(data, "docker_ref", str, default="")
    local = get_field(data, "local_command", list, default=[])
    if not docker_ref and not local:
        raise BadInput("give docker_ref and/or local_command")
    manifest, templates = read_img_man(state().settings, docker_ref) if docker_ref and data.get("read_img_man", True) \
        else ({}, {})
    row = images_store.upsert_image(database(), name=name, docker_ref=docker_ref, local_command=local,
                                    description=get_field(data, "description", str, default=""),
                                    manifest=manifest, templates=templates)
    return jsonify(row), 201


@bp.post("/images/<path:name>/copy")
def copy_image(name: str):
    data = body()
    register_builtin_image(database())
    return jsonify(images_store.copy_image(database(), name, get_field(data, "name", str, required=True))), 201


@bp.post("/images/<path:name>/public")
@require_admin
def publish_image(name: str):
    data = body()
    return jsonify(images_store.set_public(database(), name, get_field(data, "public", bool, default=True)))


@bp.post("/images/<path:name>/link")
@require_admin
def link_image(name: str):
    data = body()
    return jsonify(images_store.link_mining_image(database(), name, get_field(data, "mining_image", str,
                                                                               required=True)))


@bp.get("/jobs/<job_id>/history")
def job_history(job_id: str):
    """Per-epoch training history (live while the executor runs)."""
    job = jobs_store.get_job(database(), job_id)
    return jsonify({"job_id": job_id, "history": training_history(database(), Path(state().settings.home), job)})


@bp.post("/models/<int:model_id>/packages")
def convert_model(model_id: int):
    """Queue a conversion of a model stage into packages for the chosen targets."""
    from hub.conversions import DEFAULT_TARGETS, submit_conversion

    data = body()
    job = submit_conversion(
        _ctx(), model_id=model_id, targets=str_list(data, "targets") or list(DEFAULT_TARGETS),
        stage=get_field(data, "stage", str), val_version_id=get_field(data, "val_version_id", int),
        calib_version_id=get_field(data, "calib_version_id", int),
        max_drop=get_field(data, "max_drop", float, default=2.0), created_by=g.user["id"],
    )
    return jsonify(_job_public(job)), 202


@bp.get("/models/<int:model_id>/packages")
def list_model_packages(model_id: int):
    from hub.store import model_packages as packages_store

    models_store.get_model(database(), model_id)
    return jsonify({"packages": packages_store.list_packages(database(), model_id)})


@bp.get("/packages/<int:package_id>/download")
def download_package(package_id: int):
    from hub.fleet.algorithms import artifact_path
    from hub.store import model_packages as packages_store

    pkg = packages_store.get_package(database(), package_id)
    model = models_store.get_model(database(), pkg["model_id"])
    return send_file(artifact_path(state().settings, pkg["sha256"]), as_attachment=True,
                     download_name=f"{model['name']}-v{model['version']}-{pkg['stage']}-{pkg['target']}.zip")
