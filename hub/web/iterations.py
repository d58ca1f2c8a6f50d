"""The iteration pages: preparation, the active round's steps (pre-filled forms, run / skip), the next round,
and the History tab with the per-round mAP chart."""

from __future__ import annotations

import json

import yaml
from flask import g, redirect, render_template, request, url_for

from detkit.errors import BadInput
from hub import iterations
from hub.iterations.steps import DEFAULT_PARAMS
from hub.store import datasets as ds_store
from hub.store import iterations as it_store
from hub.store import models as models_store
from hub.store import projects as project_store
from hub.web import bp
from hub.web.util import database, form_action, split_names, state

STEP_LABELS = {"prepare_mining": "Preparation of mining data", "mining": "Data mining", "label": "Data labeling",
               "merge": "Update the training set (merge)", "training": "Model training"}


def _back(project_id: int, **_):
    return url_for("web.iteration_page", project_id=project_id)


@bp.get("/projects/<int:project_id>/iteration")
def iteration_page(project_id: int):
    project = project_store.get_project(database(), project_id)
    tab = request.args.get("tab", "round")
    ws = state().workspace
    data = None
    if it_store.get_setup(database(), project_id) is not None:
        data = iterations.show(ws, project_id)
        _show_training_hyperparameters(data)
    versions = [v for v in ds_store.list_versions(database(), project_id=project_id) if v["state"] == "ready"]
    models = models_store.list_models(database(), project_id)
    history = iterations.history(ws, project_id) if data and tab == "history" else None
    return render_template(
        "iteration.html", project=project, section="iteration", data=data, tab=tab, versions=versions,
        models=models, history=history, history_json=json.dumps(history["rounds"] if history else []),
        labels=STEP_LABELS, algorithms=_algorithms(), task_url=_task_url,
    )


def _training_template(model_id: int | None) -> dict:
    """The training image's hyperparameters (its training template): the round's model's image when it fine-tunes
    one, else the built-in executor's, as the training step runs it."""
    from hub.store import executor_images as images_store
    from hub.training import BUILTIN_IMAGE, register_builtin_image

    register_builtin_image(database())
    name = models_store.get_model(database(), model_id)["image"] if model_id else BUILTIN_IMAGE
    return dict(images_store.get_image(database(), name)["templates"].get("training") or {})


def _show_training_hyperparameters(data: dict) -> None:
    """Fill the training step's config fieldset with every hyperparameter of the image's template, at the value the
    step would use (the sticky config over the template), so a user can change any of them on the page: the
    sticky config alone is empty in round 0, and a form without fields cannot set one."""
    for rnd in data["rounds"]:
        for s in rnd["steps"]:
            params = (s.get("proposal") or {}).get("params")
            if s["step"] == "training" and params is not None:
                params["config"] = {**_training_template(rnd.get("model_id")), **(params.get("config") or {})}


def _task_url(task_id: int) -> str | None:
    """The labeling task's page, once the labeling pages exist (else no link)."""
    from werkzeug.routing import BuildError

    try:
        return url_for("web.labeling_task", task_id=task_id)
    except BuildError:
        return None


def _algorithms() -> list[str]:
    try:
        from detkit.scoring import ALGORITHMS
    except ImportError:
        return ["aldd", "entropy", "random"]
    return list(ALGORITHMS)


def _int(form, name: str, required: bool = False):
    raw = (form.get(name) or "").strip()
    if not raw:
        if required:
            raise BadInput(f"{name}: choose a value")
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadInput(f"{name}: expected a whole number, got {raw!r}") from None


def _float(form, name: str):
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise BadInput(f"{name}: expected a number, got {raw!r}") from None


@bp.post("/projects/<int:project_id>/iteration/start")
@form_action(_back)
def iteration_start(project_id: int):
    f = request.form
    iterations.start(
        state().workspace, project_id, training_version_id=_int(f, "training", True),
        mining_version_id=_int(f, "mining", True), validation_version_id=_int(f, "validation", True),
        test_version_id=_int(f, "test", True), initial_model_id=_int(f, "initial_model"),
        goal_map=_float(f, "goal_map"), goal_train_images=_int(f, "goal_train_images"), user_id=g.user["id"],
    )
    return redirect(_back(project_id))


def _step_params(step: str, form) -> dict:
    """The step's form fields (``p_<name>``, ``c_<config key>``) typed like its default parameters."""
    out: dict = {}
    for name, default in DEFAULT_PARAMS.get(step, {}).items():
        field = f"p_{name}"
        if isinstance(default, bool):
            if f"has_{name}" in form:
                out[name] = field in form
        elif isinstance(default, list):
            if field in form:
                out[name] = split_names(form.get(field))
        elif isinstance(default, dict):
            config = {}
            for key in form:
                if key.startswith("c_"):
                    raw = form.get(key)
                    try:
                        config[key[2:]] = yaml.safe_load(raw) if raw.strip() else None
                    except yaml.YAMLError:
                        raise BadInput(f"{key[2:]}: cannot read {raw!r}") from None
            if config or f"has_{name}" in form:
                out[name] = {k: v for k, v in config.items() if v is not None}
        elif field in form:
            raw = form.get(field).strip()
            if not raw:
                out[name] = None
            elif isinstance(default, int) or default is None:
                try:
                    out[name] = int(raw)
                except ValueError:
                    raise BadInput(f"{name}: expected a whole number, got {raw!r}") from None
            else:
                out[name] = raw
    return out


@bp.post("/projects/<int:project_id>/iteration/steps/<step>")
@form_action(_back)
def iteration_run_step(project_id: int, step: str):
    params = _step_params(step, request.form)
    if step == "training" and isinstance(params.get("config"), dict):
        # the form shows the whole template: keep what differs from it (the template fills the rest anyway)
        rounds = iterations.show(state().workspace, project_id)["rounds"]
        active = next((r for r in rounds if r["state"] == "active"), {})
        template = _training_template(active.get("model_id"))
        params["config"] = {k: v for k, v in params["config"].items() if k not in template or template[k] != v}
    iterations.run_step(state().workspace, project_id, step, params, user_id=g.user["id"])
    return redirect(_back(project_id))


@bp.post("/projects/<int:project_id>/iteration/steps/<step>/skip")
@form_action(_back)
def iteration_skip_step(project_id: int, step: str):
    iterations.skip_step(state().workspace, project_id, step, user_id=g.user["id"])
    return redirect(_back(project_id))


@bp.post("/projects/<int:project_id>/iteration/next")
@form_action(_back)
def iteration_next(project_id: int):
    iterations.next_round(state().workspace, project_id, mining_version_id=_int(request.form, "mining"),
                          user_id=g.user["id"])
    return redirect(_back(project_id))
