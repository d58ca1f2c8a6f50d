"""Labeling (JSON API): tasks over a dataset version, image by image labels with leases, finish into a version."""

from __future__ import annotations

import secrets

from flask import g, jsonify, request, send_file

from detkit.errors import BadInput, NotFound
from hub.api import bp
from hub.api.util import body, database, get_field, query_int, state, str_list
from hub.labeling import tasks
from hub.store import projects as projects_store


@bp.post("/projects/<ref>/labeling/tasks")
def create_labeling_task(ref: str):
    project = projects_store.find_project(database(), ref)
    data = body()
    version_id = get_field(data, "version_id", int, required=True)
    from hub.store import datasets as datasets_store

    if datasets_store.get_version(database(), version_id)["project_id"] != project["id"]:
        raise BadInput(f"dataset version {version_id} is not in project {project['name']!r}")
    task = tasks.create_task(
        state().workspace, version_id=version_id, classes=str_list(data, "classes"),
        name=get_field(data, "name", str, default=""), assignees=str_list(data, "assignees") or (),
        pre_annotations=bool(get_field(data, "pre_annotations", bool, default=True)),
        backend=get_field(data, "backend", str, default="builtin"), created_by=g.user["id"])
    return jsonify(task), 201


@bp.get("/projects/<ref>/labeling/tasks")
def list_labeling_tasks(ref: str):
    project = projects_store.find_project(database(), ref)
    return jsonify({"tasks": tasks.list_tasks(database(), project["id"])})


@bp.get("/labeling/tasks/<int:task_id>")
def get_labeling_task(task_id: int):
    return jsonify(tasks.get_task(database(), task_id))


@bp.get("/labeling/tasks/<int:task_id>/images")
def labeling_images(task_id: int):
    offset = query_int("offset", 0)
    limit = query_int("limit", 1000, minimum=1, maximum=10_000)
    task = tasks.get_task(database(), task_id)
    return jsonify({"total": task["images_total"], "offset": offset,
                    "images": tasks.task_images(database(), task_id, offset=offset, limit=limit)})


@bp.get("/labeling/tasks/<int:task_id>/images/<sha1>")
def labeling_image(task_id: int, sha1: str):
    return jsonify(tasks.image_state(database(), task_id, sha1))


@bp.put("/labeling/tasks/<int:task_id>/images/<sha1>")
def save_labeling_image(task_id: int, sha1: str):
    data = body()
    if "boxes" not in data:
        raise BadInput("field 'boxes' is required ([] with done: true means no objects)")
    return jsonify(tasks.save_labels(state().workspace, task_id, sha1, data["boxes"], user_id=g.user["id"],
                                     done=bool(get_field(data, "done", bool, default=True))))


@bp.post("/labeling/tasks/<int:task_id>/next")
def next_labeling_image(task_id: int):
    data = body()
    return jsonify({"sha1": tasks.lease_next(state().workspace, task_id, g.user["id"],
                                             after=get_field(data, "after", str))})


@bp.post("/labeling/tasks/<int:task_id>/finish")
def finish_labeling_task(task_id: int):
    data = body()
    return jsonify(tasks.finish_task(state().workspace, task_id, user_id=g.user["id"],
                                     name=get_field(data, "name", str),
                                     accept_predictions=bool(get_field(data, "accept_predictions", bool,
                                                                       default=False))))


@bp.post("/labeling/tasks/<int:task_id>/cancel")
def cancel_labeling_task(task_id: int):
    return jsonify(tasks.cancel_task(state().workspace, task_id, user_id=g.user["id"]))


@bp.post("/labeling/tasks/<int:task_id>/sync")
def sync_labeling_task(task_id: int):
    return jsonify(tasks.sync_task(state().workspace, task_id))


@bp.post("/labeling/tasks/<int:task_id>/guideline")
def upload_guideline(task_id: int):
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadInput("guideline: send the file as multipart field 'file'")
    return jsonify(tasks.set_guideline(state().workspace, task_id, upload.filename, upload.read()))


@bp.get("/labeling/tasks/<int:task_id>/guideline")
def get_guideline(task_id: int):
    path = tasks.guideline_path(state().workspace, task_id)
    if path is None:
        raise NotFound(f"labeling task {task_id} has no guideline")
    name = tasks.get_task(database(), task_id)["guideline"]
    mime = "application/pdf" if path.suffix == ".pdf" else "text/markdown; charset=utf-8"
    return send_file(path, mimetype=mime, download_name=name)


@bp.get("/labeling/tasks/<int:task_id>/export")
def export_labeling_task(task_id: int):
    from hub.labeling import files

    fmt = request.args.get("format", "ls")
    if fmt not in files.FORMATS:
        raise BadInput(f"query parameter 'format' {fmt!r}: expected one of {', '.join(files.FORMATS)}")
    task = tasks.get_task(database(), task_id)
    settings = state().settings
    settings.exports_dir.mkdir(parents=True, exist_ok=True)
    out = settings.exports_dir / f"task{task_id}-{secrets.token_hex(6)}{files.FORMATS[fmt]}"
    path = files.export_task(state().workspace, task_id, fmt, out)
    handle = open(path, "rb")  # noqa: SIM115 - send_file closes it
    path.unlink()  # POSIX keeps the open file readable: nothing is left behind
    return send_file(handle, as_attachment=True, download_name=files.export_name(task, fmt))


@bp.post("/labeling/tasks/<int:task_id>/import")
def import_labeling_file(task_id: int):
    from hub.labeling import files

    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadInput("import: send Label Studio's JSON export as multipart field 'file'")
    return jsonify(files.import_label_studio(state().workspace, task_id, upload.read(), filename=upload.filename,
                                             user_id=g.user["id"]))
