"""Projects: create, list, show, edit, archive."""

from __future__ import annotations

from flask import g, jsonify, request

from hub.api import bp
from hub.api.util import body, database, get_field, str_list
from hub.store import projects as project_store


@bp.get("/projects")
def list_projects():
    include = request.args.get("archived") in ("1", "true")
    return jsonify({"projects": project_store.list_projects(database(), include_archived=include)})


@bp.post("/projects")
def create_project():
    data = body()
    project = project_store.create_project(
        database(),
        get_field(data, "name", str, required=True),
        description=get_field(data, "description", str, default=""),
        targets=str_list(data, "classes") or str_list(data, "targets") or [],
        owner_id=g.user["id"],
        add_missing=get_field(data, "add_classes", bool, default=False),
    )
    return jsonify(project), 201


@bp.get("/projects/<ref>")
def get_project(ref: str):
    return jsonify(project_store.find_project(database(), ref))


@bp.patch("/projects/<ref>")
def update_project(ref: str):
    data = body()
    project = project_store.find_project(database(), ref)
    targets = str_list(data, "classes")
    if targets is None:
        targets = str_list(data, "targets")
    updated = project_store.update_project(
        database(),
        project["id"],
        name=get_field(data, "name", str),
        description=get_field(data, "description", str),
        targets=targets,
        archived=get_field(data, "archived", bool),
    )
    return jsonify(updated)


@bp.post("/projects/<ref>/archive")
def archive_project(ref: str):
    project = project_store.find_project(database(), ref)
    return jsonify(project_store.update_project(database(), project["id"], archived=True))
