"""Dataset groups of a project, imports, public datasets."""

from __future__ import annotations

from flask import g, jsonify, request, url_for

from hub import auth
from hub.api import bp
from hub.api.util import body, database, get_field, state
from hub.datasets import background, service
from hub.store import datasets as ds_store
from hub.store import projects as project_store


@bp.get("/projects/<ref>/datasets")
def list_datasets(ref: str):
    project = project_store.find_project(database(), ref)
    return jsonify({"project_id": project["id"], "datasets": ds_store.list_groups(database(), project["id"])})


@bp.post("/projects/<ref>/datasets/import")
def import_dataset(ref: str):
    """Start an import; multipart (``file`` + form fields) or JSON ``{source, value, name, unknown}``."""
    if request.files or request.form:
        fields = request.form.to_dict()
        upload = request.files.get("file")
    else:
        data = body()
        fields = {
            "source": get_field(data, "source", str, required=True),
            "value": data.get("value"),
            "name": get_field(data, "name", str),
            "unknown": get_field(data, "unknown", str),
        }
        upload = None
    version = background.import_request(state(), ref, fields, upload, user_id=g.user["id"])
    out = service.summary(ds_store.get_version(database(), version["id"]))
    out["poll"] = url_for("api.get_version", version_id=version["id"])
    return jsonify(out), 202


@bp.get("/datasets/public")
def public_datasets():
    return jsonify({"versions": ds_store.list_public_versions(database())})


@bp.post("/datasets/<int:group_id>/public")
@auth.require_admin
def set_public(group_id: int):
    public = get_field(body(), "public", bool, default=True)
    return jsonify(ds_store.set_group_public(database(), group_id, public))
