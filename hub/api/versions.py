"""Dataset versions: show (with progress and report), assets, operations, export."""

from __future__ import annotations

import secrets

from flask import g, jsonify, request, send_file

from detkit.errors import BadInput
from hub.api import bp
from hub.api.util import body, database, get_field, int_list, query_int, state, str_list
from hub.datasets import ops, service
from hub.store import assets as asset_store
from hub.store import classes as class_store
from hub.store import datasets as ds_store


@bp.get("/versions")
def list_versions():
    project = request.args.get("project")
    pid = None
    if project:
        from hub.store import projects as project_store

        pid = project_store.find_project(database(), project)["id"]
    return jsonify({"versions": ds_store.list_versions(database(), project_id=pid)})


@bp.get("/versions/<int:version_id>")
def get_version(version_id: int):
    v = ds_store.get_version(database(), version_id)
    return jsonify({**v, "summary": service.summary(v)})


def asset_filter_from_args(version_id: int, args) -> tuple[str, list]:
    """SQL conditions from ``?class=a,b&tag=k=v`` (shared with the dataset page)."""
    classes = [c for c in (args.get("class") or "").split(",") if c.strip()]
    tags = {}
    for item in args.getlist("tag"):
        if item.strip():
            key, _, value = item.partition("=")
            tags[key.strip()] = value.strip()
    ids = [class_store.class_id(database(), c) for c in classes]
    return asset_store.asset_where(version_id, classes_in=ids, asset_tags=tags)


@bp.get("/versions/<int:version_id>/assets")
def version_assets(version_id: int):
    offset = query_int("offset", 0)
    limit = query_int("limit", 50, minimum=1, maximum=1000)
    ds_store.get_version(database(), version_id)
    where, params = asset_filter_from_args(version_id, request.args)
    return jsonify(
        {
            "total": asset_store.count_assets(database(), version_id, where, params),
            "offset": offset,
            "limit": limit,
            "assets": asset_store.page_assets(
                database(), version_id, where=where, params=params, offset=offset, limit=limit
            ),
        }
    )


def _tag_dict(data: dict, name: str) -> dict | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadInput(f"field '{name}': expected an object of strings")
    return value


def _op_out(v: dict) -> dict:
    return service.summary(v)


@bp.post("/versions/<int:version_id>/filter")
def filter_version(version_id: int):
    data = body()
    v = ops.filter_version(
        state().workspace,
        version_id,
        classes_in=str_list(data, "classes_in") or [],
        classes_out=str_list(data, "classes_out") or [],
        asset_tags=_tag_dict(data, "asset_tags"),
        box_tags=_tag_dict(data, "box_tags"),
        name=get_field(data, "name", str),
        user_id=g.user["id"],
    )
    return jsonify(_op_out(v)), 201


@bp.post("/versions/<int:version_id>/merge")
def merge_version(version_id: int):
    data = body()
    get_field(data, "guests", list, required=True)
    guests = int_list(data, "guests", required=False)
    v = ops.merge_versions(
        state().workspace,
        version_id,
        guests,
        strategy=get_field(data, "strategy", str, default="stop"),
        name=get_field(data, "name", str),
        user_id=g.user["id"],
    )
    return jsonify(_op_out(v)), 201


@bp.post("/versions/<int:version_id>/sample")
def sample_version(version_id: int):
    data = body()
    v = ops.sample_version(
        state().workspace,
        version_id,
        count=get_field(data, "count", int),
        ratio=get_field(data, "ratio", float),
        seed=get_field(data, "seed", int, default=0),
        name=get_field(data, "name", str),
        user_id=g.user["id"],
    )
    return jsonify(_op_out(v)), 201


@bp.post("/versions/<int:version_id>/split")
def split_version(version_id: int):
    data = body()
    ratios = {p: get_field(data, p, float, default=0.0) for p in ops.SPLIT_PARTS}
    parts = ops.split_version(
        state().workspace,
        version_id,
        ratios=ratios,
        seed=get_field(data, "seed", int, default=0),
        name=get_field(data, "name", str),
        user_id=g.user["id"],
    )
    return jsonify({k: _op_out(v) for k, v in parts.items()}), 201


_SUFFIX = {"voc": ".zip", "coco": ".json", "yolo": ".zip"}


@bp.get("/versions/<int:version_id>/export")
def export_version(version_id: int):
    fmt = request.args.get("format", "voc")
    if fmt not in _SUFFIX:
        raise BadInput(f"query parameter 'format': expected one of {', '.join(_SUFFIX)}")
    v = ds_store.require_ready(database(), version_id)
    settings = state().settings
    settings.exports_dir.mkdir(parents=True, exist_ok=True)
    out = settings.exports_dir / f"v{version_id}-{secrets.token_hex(6)}{_SUFFIX[fmt]}"
    path = ops.export_version(state().workspace, version_id, fmt, out)

    handle = open(path, "rb")  # noqa: SIM115 - send_file closes it
    path.unlink()  # POSIX keeps the open file readable: nothing is left behind, even on a broken download
    name = f"{v['group_name']}-v{v['number']}-{fmt}{_SUFFIX[fmt]}"
    return send_file(handle, as_attachment=True, download_name=name)
