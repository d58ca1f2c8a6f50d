"""Labeling pages: a project's labeling tasks (list + create form) and the built-in annotator of one task.

The annotator itself is plain JS on a canvas (``hub/static/annotator.js``) that talks to the JSON API
(``/api/v1/labeling/tasks/...``) with the session cookie; these views only render the page around it and
take the plain form posts (create a task, upload a guideline).
"""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from detkit.errors import BadInput
from hub.store import datasets as ds_store
from hub.store import projects as project_store
from hub.store import users as user_store
from hub.web import bp
from hub.web.util import database, form_action, split_names, state

#: the labeling backends a task can use (key, label)
BACKENDS = [("builtin", "Built-in annotator"), ("label_studio", "Label Studio")]
#: guideline text shown inline at most (a longer Markdown file is cut, the download link has it all)
GUIDELINE_TEXT_LIMIT = 200_000


def _tasks():
    """``hub.labeling.tasks``, imported on use (the pages register with the hub even where labeling's core
    is being rebuilt, and the hub starts without it)."""
    from hub.labeling import tasks

    return tasks


def _tasks_url(project_id: int, **_) -> str:
    return url_for("web.labeling_tasks", project_id=project_id)


def _task_url(task_id: int, **_) -> str:
    return url_for("web.labeling_task", task_id=task_id)


@bp.get("/projects/<int:project_id>/labeling")
def labeling_tasks(project_id: int):
    project = project_store.get_project(database(), project_id)
    versions = [v for v in ds_store.list_versions(database(), project_id=project_id) if v["state"] == "ready"]
    chosen = request.args.get("version", type=int)
    return render_template(
        "labeling_tasks.html", project=project, section="labeling",
        tasks=_tasks().list_tasks(database(), project_id), versions=versions, chosen=chosen,
        users=[u for u in user_store.list_users(database()) if not u.get("disabled")], backends=BACKENDS,
    )


@bp.post("/projects/<int:project_id>/labeling")
@form_action(_tasks_url)
def labeling_create(project_id: int):
    f = request.form
    raw = (f.get("version") or "").strip()
    try:
        version_id = int(raw)
    except ValueError:
        raise BadInput(f"version: choose a dataset version, got {raw!r}") from None
    if ds_store.get_version(database(), version_id)["project_id"] != project_id:
        raise BadInput(f"version: dataset version {version_id} is not in this project")
    task = _tasks().create_task(
        state().workspace, version_id=version_id, classes=split_names(f.get("classes")) or None,
        name=(f.get("name") or "").strip(), assignees=f.getlist("assignees"),
        pre_annotations="pre_annotations" in f, backend=f.get("backend") or "builtin", created_by=g.user["id"],
    )
    flash(f"labeling task {task['id']} created", "ok")
    return redirect(_task_url(task["id"]))


def _guideline(task: dict) -> dict | None:
    """What the page shows of the task's guideline: a PDF in a frame, Markdown as text."""
    name = task.get("guideline")
    if not name:
        return None
    out = {"filename": name, "url": f"/api/v1/labeling/tasks/{task['id']}/guideline", "pdf": name.lower().endswith(".pdf")}
    if not out["pdf"]:
        path = _tasks().guideline_path(state().workspace, task["id"])
        text = path.read_bytes()[:GUIDELINE_TEXT_LIMIT].decode("utf-8", "replace") if path and path.exists() else ""
        out["text"] = text
    return out


@bp.get("/labeling/tasks/<int:task_id>")
def labeling_task(task_id: int):
    task = _tasks().get_task(database(), task_id)
    project = project_store.get_project(database(), task["project_id"])
    config = {"taskId": task["id"], "classes": task["classes"], "state": task["state"], "userId": g.user["id"],
              "api": f"/api/v1/labeling/tasks/{task['id']}", "imageUrl": "/assets/{sha1}/image",
              "versionUrl": "/versions/{id}"}
    return render_template(
        "labeling_task.html", project=project, section="labeling", task=task, guideline=_guideline(task),
        config=config, backend_label=dict(BACKENDS).get(task["backend"], task["backend"]),
    )


@bp.post("/labeling/tasks/<int:task_id>/guideline")
@form_action(_task_url)
def labeling_guideline(task_id: int):
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadInput("guideline: choose a PDF or Markdown file")
    _tasks().set_guideline(state().workspace, task_id, upload.filename, upload.read())
    flash("guideline uploaded", "ok")
    return redirect(_task_url(task_id))
