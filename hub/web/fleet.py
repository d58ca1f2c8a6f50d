"""Fleet pages (the top nav's "Deployment"): devices, the device page with its algorithm centre,
algorithms (mine, public, reviews, try it out), deployments with live rollout rows."""

from __future__ import annotations

import base64
import json

from flask import current_app, flash, g, redirect, render_template, request, session, url_for

from detkit.errors import BadInput, Forbidden, NotFound
from hub import auth
from hub.fleet import algorithms as algos
from hub.fleet import deployments as deps
from hub.fleet import devices as devs
from hub.fleet.service import fleet_of
from hub.store import fleet as fleet_store
from hub.store import fleet_algorithms as algo_store
from hub.store import fleet_deployments as dep_store
from hub.store import fleet_records as records_store
from hub.store import models as models_store
from hub.store import projects as project_store
from hub.web import bp
from hub.web.util import database, form_action, split_names, state


def _float(name: str, default: float | None = None) -> float | None:
    raw = request.form.get(name, "")
    if raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise BadInput(f"{name}: expected a number, got {raw!r}") from None


def _deployable() -> list[dict]:
    """Algorithms this user may deploy: their own and the public ones."""
    db = database()
    own = algo_store.list_algorithms(db) if g.user["role"] == "admin" else \
        algo_store.list_algorithms(db, owner_id=g.user["id"])
    public = [a for a in algo_store.list_algorithms(db, visibility="public") if a["id"] not in {o["id"] for o in own}]
    return own + public


DEVICES_PER_PAGE = 50


@bp.get("/deployment")
def deployment():
    """The fleet overview: presence counts, one page of devices (filtered by id/name, tag, online),
    deploy form, recent deployments. A page never reads more than :data:`DEVICES_PER_PAGE` devices."""
    db = database()
    service = fleet_of(current_app)
    q, tag = request.args.get("q", "").strip(), request.args.get("tag", "").strip()
    presence = request.args.get("state", "")
    online = {"online": True, "offline": False}.get(presence)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    found, matching = fleet_store.find_devices(db, q, tag, online, DEVICES_PER_PAGE, (page - 1) * DEVICES_PER_PAGE)
    pages = max(1, -(-matching // DEVICES_PER_PAGE))
    filters = {k: v for k, v in {"q": q, "tag": tag, "state": presence if online is not None else ""}.items() if v}
    return render_template(
        "fleet.html", devices=devs.summaries(db, found), tags=fleet_store.all_tags(db), counts=fleet_store.presence_counts(db),
        matching=matching, page=page, pages=pages, first=(page - 1) * DEVICES_PER_PAGE + 1, filters=filters,
        deployments=dep_store.list_deployments(db, limit=50),
        algorithms=_deployable(), fleet=service.info() if service else None,
        fleet_error=current_app.extensions.get("fleet_error"), records=records_store.count_records(db),
        projects=project_store.list_projects(db), new_device=session.pop("new_device", None),
        preselect=request.args.get("algorithm", type=int))


@bp.post("/deployment/devices")
@auth.require_admin
@form_action(lambda: url_for("web.deployment"))
def provision_device_page():
    project = request.form.get("project") or None
    device = devs.provision(database(), request.form.get("id", "").strip(), request.form.get("name", "").strip(),
                            split_names(request.form.get("tags")),
                            project_store.find_project(database(), project)["id"] if project else None)
    session["new_device"] = {"id": device["id"], "token": device["token"],
                             "hub_public_key": algos.public_key(state().settings)}
    return redirect(url_for("web.deployment"))


@bp.get("/deployment/devices/<device_id>")
def device_page(device_id: str):
    db = database()
    device = devs.detail(db, device_id)
    series = fleet_store.metrics_series(db, device_id)
    return render_template("device.html", device=device, series_json=json.dumps(series),
                           records=records_store.count_records(db, device_id),
                           new_token=session.pop("new_device_token", None))


@bp.post("/deployment/devices/<device_id>/algorithms/<name>/<action>")
@form_action(lambda device_id, name, action: url_for("web.device_page", device_id=device_id))
def device_algorithm_action(device_id: str, name: str, action: str):
    if action == "remove":
        deps.remove_algorithm(database(), device_id, name)
        flash(f"{name} removed from {device_id}", "ok")
    elif action in ("enable", "disable", "rollback", "restart"):
        service = fleet_of(current_app)
        if service is None:
            raise BadInput("the fleet is not connected in this hub process")
        if action in ("enable", "disable"):
            fleet_store.set_slot_enabled(database(), device_id, name, action == "enable")
        service.send_command(device_id, action, name)
        flash(f"{action} sent to {device_id} for {name}", "ok")
    else:
        raise NotFound(f"unknown action {action!r}")
    service = fleet_of(current_app)
    if service:
        service.wake()
    return redirect(url_for("web.device_page", device_id=device_id))


@bp.post("/deployment/devices/<device_id>/remove")
@auth.require_admin
@form_action(lambda device_id: url_for("web.device_page", device_id=device_id))
def remove_device_page(device_id: str):
    devs.remove(database(), device_id, fleet_of(current_app))
    flash(f"device {device_id} removed", "ok")
    return redirect(url_for("web.deployment"))


@bp.post("/deployment/devices/<device_id>/token")
@auth.require_admin
@form_action(lambda device_id: url_for("web.device_page", device_id=device_id))
def rotate_token_page(device_id: str):
    session["new_device_token"] = devs.rotate_token(database(), device_id)["token"]
    return redirect(url_for("web.device_page", device_id=device_id))


# --- algorithms -----------------------------------------------------------------------------------


@bp.get("/deployment/algorithms")
def algorithms_page():
    db = database()
    models = [m for m in models_store.list_models(db)]
    return render_template(
        "algorithms.html", mine=algo_store.list_algorithms(db, owner_id=g.user["id"]),
        public=algo_store.list_algorithms(db, visibility="public"),
        pending=algo_store.list_algorithms(db, visibility="pending") if g.user["role"] == "admin" else [],
        models=models)


@bp.post("/deployment/algorithms")
@form_action(lambda: url_for("web.algorithms_page"))
def publish_algorithm_page():
    st = state()
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        project = request.form.get("project") or None
        algo = algos.publish_upload(
            database(), st.settings, upload, name=request.form.get("name") or None,
            title=request.form.get("title", ""), description=request.form.get("description", ""),
            project_id=project_store.find_project(database(), project)["id"] if project else None,
            owner_id=g.user["id"])
    else:
        ref = request.form.get("model", "")
        model_id, _, stage = ref.partition(":")
        if not model_id.isdigit():
            raise BadInput("choose a model stage or upload a package zip")
        algo = algos.publish_model(database(), st.settings, int(model_id), stage=stage or None,
                                   name=request.form.get("name") or None, title=request.form.get("title", ""),
                                   description=request.form.get("description", ""), owner_id=g.user["id"])
    flash(f"published {algo['label']}", "ok")
    return redirect(url_for("web.algorithm_page", algorithm_id=algo["id"]))


def _visible(algorithm_id: int) -> dict:
    return algos.get_visible(database(), algorithm_id, g.user)


@bp.get("/deployment/algorithms/<int:algorithm_id>")
def algorithm_page(algorithm_id: int):
    return render_template("algorithm.html", algo=_visible(algorithm_id), tried=session.pop("tried", None))


@bp.post("/deployment/algorithms/<int:algorithm_id>/public")
@form_action(lambda algorithm_id: url_for("web.algorithm_page", algorithm_id=algorithm_id))
def request_public_page(algorithm_id: int):
    algos.request_public(database(), algorithm_id, g.user)
    flash("sent for review: an administrator will approve or reject it", "ok")
    return redirect(url_for("web.algorithm_page", algorithm_id=algorithm_id))


@bp.post("/deployment/algorithms/<int:algorithm_id>/review")
@form_action(lambda algorithm_id: url_for("web.algorithm_page", algorithm_id=algorithm_id))
def review_page(algorithm_id: int):
    algo = algos.review(database(), algorithm_id, request.form.get("decision") == "approve",
                        request.form.get("note", ""), g.user)
    flash(f"{algo['label']} is now {algo['visibility']}", "ok")
    return redirect(url_for("web.algorithm_page", algorithm_id=algorithm_id))


@bp.post("/deployment/algorithms/<int:algorithm_id>/try")
@form_action(lambda algorithm_id: url_for("web.algorithm_page", algorithm_id=algorithm_id))
def try_page(algorithm_id: int):
    algo = _visible(algorithm_id)
    upload = request.files.get("image")
    if upload is not None and upload.filename:
        image = upload.read()
    elif request.form.get("url"):
        image = algos.fetch_image(request.form["url"].strip())
    else:
        raise BadInput("upload an image or give an image URL")
    result = algos.try_image(state().settings, algo, image, _float("conf", 0.25))
    png = result.pop("png")
    # the picture goes straight into the page (one render; too big for the session cookie)
    return render_template("algorithm.html", algo=algo, tried={
        **result, "png": base64.b64encode(png).decode()})


# --- deployments ----------------------------------------------------------------------------------


@bp.post("/deployment/deploy")
@form_action(lambda: url_for("web.deployment"))
def deploy_page():
    settings = {}
    conf = _float("conf")
    if conf is not None:
        settings["conf"] = conf
    target = request.form.get("target", "")
    if target in ("device:", "tag:"):
        raise BadInput("choose a device or a tag")
    dep, created = deps.deploy(
        database(), algorithm_id=int(request.form.get("algorithm_id") or 0), target=target,
        backend=request.form.get("backend") or None, settings=settings, name=request.form.get("name") or None,
        batch_percent=_float("batch_percent"), success_threshold=_float("success_threshold"),
        max_failures=int(_float("max_failures", 1)), user_id=None if g.user["role"] == "admin" else g.user["id"])
    service = fleet_of(current_app)
    if service:
        service.wake()
    flash(f"deployment {dep['id']} {'started' if created else 'is already running'}", "ok")
    return redirect(url_for("web.deployment_page", deployment_id=dep["id"]))


@bp.get("/deployment/deployments/<int:deployment_id>")
def deployment_page(deployment_id: int):
    dep = dep_store.get_deployment(database(), deployment_id)
    return render_template("deployment.html", dep=dep, rows=dep_store.rows(database(), deployment_id))


@bp.post("/deployment/deployments/<int:deployment_id>/rollback")
@form_action(lambda deployment_id: url_for("web.deployment_page", deployment_id=deployment_id))
def rollback_page(deployment_id: int):
    dep = dep_store.get_deployment(database(), deployment_id)
    if g.user["role"] != "admin" and dep["created_by"] != g.user["id"]:
        raise Forbidden("only the user who deployed it or an administrator may roll it back")
    deps.rollback(database(), deployment_id)
    service = fleet_of(current_app)
    if service:
        service.wake()
    flash("rolling back: every device gets what it ran before", "ok")
    return redirect(url_for("web.deployment_page", deployment_id=deployment_id))


@bp.app_template_filter("ago")
def _ago(ts) -> str:
    """Seconds since ``ts`` as a short age (``–`` for never)."""
    import time

    if not ts:
        return "never"
    s = max(0, int(time.time() - float(ts)))
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"

