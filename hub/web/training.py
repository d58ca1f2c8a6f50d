"""Pages for model training (the guide's steps 1-7), models, jobs and executor images."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from flask import g, redirect, render_template, request, url_for

from detkit.errors import BadInput
from hub import auth
from hub.jobs.setup import backend_key, job_context
from hub.models_io import model_summary
from hub.store import datasets as ds_store
from hub.store import executor_images as images_store
from hub.store import jobs as jobs_store
from hub.store import models as models_store
from hub.store import projects as project_store
from hub.training import BUILTIN_IMAGE, register_builtin_image, submit_training, training_history
from hub.web import bp
from hub.web.util import database, form_action, state


def _ready_versions(project_id: int) -> list[dict]:
    return [v for v in ds_store.list_versions(database(), project_id=project_id) if v["state"] == "ready"]


@bp.get("/projects/<int:project_id>/training")
def training_form(project_id: int):
    p = project_store.get_project(database(), project_id)
    register_builtin_image(database())
    images = images_store.list_images(database())
    chosen = request.args.get("image") or BUILTIN_IMAGE
    image = next((i for i in images if i["name"] == chosen), images[0])
    versions = _ready_versions(project_id)
    train_id = request.args.get("train", type=int) or next((v["id"] for v in versions if v["gt_boxes"]), None)
    classes = sorted(ds_store.class_counts(database(), train_id)["gt"]) if train_id else []
    models = [m for m in models_store.list_models(database(), project_id) if m["image"] == image["name"]]
    template = image["templates"].get("training", {})
    return render_template(
        "training.html", project=p, section="training", images=images, image=image, versions=versions,
        train_id=train_id, classes=classes, models=models, template=template,
        docker=backend_key(state().settings) == "docker",
    )


def _coerce(raw: str, default):
    """Form text → the template default's type (YAML for lists/objects)."""
    if isinstance(default, bool):
        return raw in ("1", "true", "on", "yes")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise BadInput(f"{raw!r} is not an integer") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise BadInput(f"{raw!r} is not a number") from None
    if isinstance(default, (list, dict)):
        return yaml.safe_load(raw)
    return raw


@bp.post("/projects/<int:project_id>/training")
@form_action(lambda project_id: url_for("web.training_form", project_id=project_id))
def training_submit(project_id: int):
    f = request.form
    image = images_store.get_image(database(), f.get("image") or BUILTIN_IMAGE)
    template = image["templates"].get("training", {})
    config = {}
    for key, default in template.items():
        field = f"hp_{key}"
        if isinstance(default, bool):
            value = field in f
        elif field in f and f[field] != "":
            value = _coerce(f[field], default)
        else:
            continue
        if value != default:
            config[key] = value
    pretrained = f.get("pretrained") or ""
    pre_id, _, pre_stage = pretrained.partition(":")

    def as_int(name):
        try:
            return int(f.get(name, ""))
        except ValueError:
            raise BadInput(f"choose a {name.replace('_', ' ')}") from None

    job = submit_training(
        job_context(state().settings, database()), project_id=project_id, train_version_id=as_int("train_version"),
        val_version_id=as_int("val_version"), image=image["name"], targets=f.getlist("targets") or None,
        config=config, pretrained_model_id=int(pre_id) if pre_id else None, pretrained_stage=pre_stage or None,
        gpu_count=int(f.get("gpu_count") or 0), backend_key=backend_key(state().settings),
        name=f.get("name") or None, created_by=g.user["id"],
    )
    return redirect(url_for("web.job_page", job_id=job["id"]))


@bp.get("/projects/<int:project_id>/models")
def models_page(project_id: int):
    p = project_store.get_project(database(), project_id)
    training = jobs_store.list_jobs(database(), project_id=project_id, kind="train", limit=50)
    models = [model_summary(m) | {"created_at": m["created_at"]} for m in models_store.list_models(database(), project_id)]
    return render_template("models.html", project=p, section="models", jobs=training, models=models)


@bp.post("/projects/<int:project_id>/models/import")
@form_action(lambda project_id: url_for("web.models_page", project_id=project_id))
def models_import(project_id: int):
    import tempfile

    from hub.models_io import import_model

    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadInput("choose a model package (.tar.gz) or an .onnx file")
    settings = state().settings
    suffix = ".onnx" if upload.filename.endswith(".onnx") else ".tar.gz"
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
        path = Path(tmp) / f"{Path(upload.filename).name.split('.')[0] or 'model'}{suffix}"
        upload.save(path)
        classes = [c.strip() for c in request.form.get("classes", "").split(",") if c.strip()] or None
        model = import_model(database(), Path(settings.home), path, project_id=project_id,
                             name=request.form.get("name") or None, class_names=classes)
    return redirect(url_for("web.model_page", model_id=model["id"]))


@bp.get("/models/<int:model_id>")
def model_page(model_id: int):
    m = models_store.get_model(database(), model_id)
    p = project_store.get_project(database(), m["project_id"]) if m["project_id"] else None
    job = jobs_store.get_job(database(), m["job_id"]) if m["job_id"] else None
    from converters.formats import TARGETS
    from hub.store import model_packages as packages_store

    versions = _ready_versions(m["project_id"]) if m["project_id"] else []
    return render_template("model.html", project=p, section="models", model=m, job=job,
                           history_json=json.dumps(m["history"]), packages=packages_store.list_packages(database(), model_id),
                           targets=list(TARGETS), versions=versions)


@bp.post("/models/<int:model_id>/packages")
@form_action(lambda model_id: url_for("web.model_page", model_id=model_id))
def model_convert(model_id: int):
    from hub.conversions import submit_conversion

    f = request.form
    job = submit_conversion(
        job_context(state().settings, database()), model_id=model_id, targets=f.getlist("targets"),
        stage=f.get("stage") or None, val_version_id=int(f["val_version"]) if f.get("val_version") else None,
        max_drop=float(f.get("max_drop") or 2.0), created_by=g.user["id"],
    )
    return redirect(url_for("web.job_page", job_id=job["id"]))


@bp.post("/packages/<int:package_id>/publish")
@auth.require_admin
@form_action(lambda package_id: url_for("web.jobs_page"))
def package_publish(package_id: int):
    """A converted package becomes an algorithm (My Algorithms) devices can be given."""
    import re

    from hub.fleet.algorithms import artifact_path, publish_package
    from hub.store import model_packages as packages_store

    pkg = packages_store.get_package(database(), package_id)
    model = models_store.get_model(database(), pkg["model_id"])
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{model['name']}-v{model['version']}-{pkg['target']}").strip("-._")
    algo = publish_package(database(), state().settings, artifact_path(state().settings, pkg["sha256"]),
                           name=name[:64], title=f"{model['name']} v{model['version']} ({pkg['target']})",
                           description=f"{pkg['status']}: {pkg['reason']}", project_id=model["project_id"],
                           owner_id=g.user["id"])
    return redirect(url_for("web.algorithm_page", algorithm_id=algo["id"]))


@bp.get("/jobs")
def jobs_page():
    return render_template("jobs.html", project=None, jobs=jobs_store.list_jobs(database(), limit=200))


@bp.get("/jobs/<job_id>")
def job_page(job_id: str):
    job = jobs_store.get_job(database(), job_id)
    p = project_store.get_project(database(), job["project_id"]) if job["project_id"] else None
    model = models_store.model_for_job(database(), job_id)
    from hub.jobs.eta import eta_seconds

    section = {"train": "models", "mining": "mining", "mining_prepare": "mining"}.get(job["kind"])
    return render_template("job.html", project=p, section=section, job=job, eta_s=eta_seconds(job),
                           model=model, params_json=json.dumps(job["params"], indent=1),
                           monitor_json=json.dumps(jobs_store.monitor_history(database(), job_id)),
                           history_json=json.dumps(training_history(database(), Path(state().settings.home), job)))


@bp.post("/jobs/<job_id>/cancel")
@form_action(lambda job_id: url_for("web.job_page", job_id=job_id))
def job_cancel(job_id: str):
    jobs_store.request_cancel(database(), job_id)
    return redirect(url_for("web.job_page", job_id=job_id))


@bp.get("/admin/images")
@auth.require_admin
def images_admin():
    register_builtin_image(database())
    return render_template("images.html", project=None, images=images_store.list_images(database()))


@bp.post("/admin/images")
@auth.require_admin
@form_action(lambda: url_for("web.images_admin"))
def images_add():
    from hub.images import read_img_man

    f = request.form
    name, ref = f.get("name", "").strip(), f.get("docker_ref", "").strip()
    local = f.get("local_command", "").split()
    if not name or not (ref or local):
        raise BadInput("give a name and a docker reference (or a local command)")
    manifest, templates = read_img_man(state().settings, ref) if ref else ({}, {})
    images_store.upsert_image(database(), name=name, docker_ref=ref, local_command=local,
                              description=f.get("description", ""), manifest=manifest, templates=templates)
    return redirect(url_for("web.images_admin"))
