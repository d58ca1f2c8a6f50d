"""Dataset pages: import form, version page (report, counts, thumbnails with boxes), operations, images."""

from __future__ import annotations

import hashlib
import math
import re

from flask import abort, flash, g, redirect, render_template, request, send_file, url_for

from detkit.errors import BadInput
from hub import auth
from hub.datasets import background, ops
from hub.store import assets as asset_store
from hub.store import classes as class_store
from hub.store import datasets as ds_store
from hub.store import projects as project_store
from hub.web import bp
from hub.web.thumbs import original_path, thumbnail_path
from hub.web.util import database, form_action, split_names, state

PAGE_SIZE = 24
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def class_color(name: str) -> str:
    """A stable colour per class name (hue from its hash)."""
    hue = int(hashlib.md5(name.encode()).hexdigest()[:4], 16) % 360
    return f"hsl({hue}, 85%, 50%)"


@bp.get("/projects/<int:project_id>/datasets/import")
def import_form(project_id: int):
    p = project_store.get_project(database(), project_id)
    return render_template(
        "import.html",
        project=p,
        section="datasets",
        versions=[v for v in ds_store.list_versions(database()) if v["state"] == "ready"],
        public=ds_store.list_public_versions(database()),
        max_mb=state().settings.max_upload_bytes // (1024 * 1024),
    )


@bp.post("/projects/<int:project_id>/datasets/import")
@form_action(lambda project_id: url_for("web.import_form", project_id=project_id))
def import_submit(project_id: int):
    fields = request.form.to_dict()
    kind = fields.get("source", "zip")
    fields["value"] = fields.get(f"value_{kind}", fields.get("value"))
    upload = request.files.get("file") if kind == "zip" else None
    if kind == "zip" and (upload is None or not upload.filename):
        raise BadInput("choose a zip file to upload")
    version = background.import_request(state(), project_id, fields, upload, user_id=g.user["id"])
    return redirect(url_for("web.version", version_id=version["id"]))


def _filters() -> tuple[list[str], dict[str, str]]:
    classes = [c for c in request.args.getlist("class") if c.strip()]
    tags = {}
    for item in request.args.getlist("tag"):
        key, _, value = item.partition("=")
        if key.strip():
            tags[key.strip()] = value.strip()
    return classes, tags


@bp.get("/versions/<int:version_id>")
def version(version_id: int):
    v = ds_store.get_version(database(), version_id)
    p = project_store.get_project(database(), v["project_id"])
    classes, tags = _filters()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    total = 0
    assets: list[dict] = []
    if v["state"] == "ready":
        where, params = asset_store.asset_where(
            version_id, classes_in=[class_store.class_id(database(), c) for c in classes], asset_tags=tags
        )
        total = asset_store.count_assets(database(), version_id, where, params)
        assets = asset_store.page_assets(
            database(), version_id, where=where, params=params, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
    present = sorted(set(v["class_counts"]["gt"]) | set(v["class_counts"]["pred"]))
    return render_template(
        "version.html",
        project=p,
        section="datasets",
        v=v,
        assets=assets,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / PAGE_SIZE)),
        classes=classes,
        tags=tags,
        present_classes=present,
        tag_keys=asset_store.asset_tag_keys(database(), version_id) if v["state"] == "ready" else [],
        colors={c: class_color(c) for c in present},
        siblings=[
            x for x in ds_store.list_versions(database(), project_id=v["project_id"]) if x["state"] == "ready"
        ],
    )


def _float(name: str) -> float | None:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise BadInput(f"{name}: {raw!r} is not a number") from None


def _int(name: str, default: int | None = None) -> int | None:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadInput(f"{name}: {raw!r} is not a whole number") from None


def _tags(field: str) -> dict[str, str]:
    out = {}
    for item in split_names(request.form.get(field)):
        key, _, value = item.partition("=")
        out[key.strip()] = value.strip()
    return out


@bp.post("/versions/<int:version_id>/op")
@form_action(lambda version_id: url_for("web.version", version_id=version_id))
def version_op(version_id: int):
    ws, uid = state().workspace, g.user["id"]
    op = request.form.get("op", "")
    name = (request.form.get("name") or "").strip() or None
    if op == "filter":
        new = ops.filter_version(
            ws,
            version_id,
            classes_in=split_names(request.form.get("classes_in")),
            classes_out=split_names(request.form.get("classes_out")),
            asset_tags=_tags("asset_tags"),
            box_tags=_tags("box_tags"),
            name=name,
            user_id=uid,
        )
    elif op == "sample":
        new = ops.sample_version(
            ws,
            version_id,
            count=_int("count"),
            ratio=_float("ratio"),
            seed=_int("seed", 0),
            name=name,
            user_id=uid,
        )
    elif op == "split":
        parts = ops.split_version(
            ws,
            version_id,
            ratios={p: _float(p) or 0.0 for p in ops.SPLIT_PARTS},
            seed=_int("seed", 0),
            name=name,
            user_id=uid,
        )
        flash("split into " + ", ".join(f"{k}: {v['images']} images" for k, v in parts.items()), "ok")
        return redirect(url_for("web.project", project_id=next(iter(parts.values()))["project_id"]))
    elif op == "merge":
        guests = [int(x) for x in request.form.getlist("guests") if x.strip().isdigit()]
        new = ops.merge_versions(
            ws, version_id, guests, strategy=request.form.get("strategy", "stop"), name=name, user_id=uid
        )
    else:
        raise BadInput(f"unknown operation {op!r}")
    flash(f"{op}: new version {new['group_name']} v{new['number']} with {new['images']} images", "ok")
    return redirect(url_for("web.version", version_id=new["id"]))


@bp.post("/datasets/<int:group_id>/public")
@auth.require_admin
@form_action(lambda group_id: url_for("web.projects"))
def set_public(group_id: int):
    grp = ds_store.set_group_public(database(), group_id, request.form.get("public", "1") == "1")
    flash(f"dataset {grp['name']} is now {'public' if grp['public'] else 'private'}", "ok")
    return redirect(url_for("web.project", project_id=grp["project_id"]))


def _checked_sha1(sha1: str) -> str:
    if not _SHA1.match(sha1) or asset_store.asset_exists(database(), sha1) is None:
        abort(404)
    return sha1


@bp.get("/assets/<sha1>/thumb.jpg")
def asset_thumb(sha1: str):
    path = thumbnail_path(state().settings, _checked_sha1(sha1))
    return send_file(path, mimetype="image/jpeg", max_age=86400)


@bp.get("/assets/<sha1>/image")
def asset_image(sha1: str):
    row = asset_store.asset_exists(database(), _checked_sha1(sha1))
    return send_file(original_path(state().settings, sha1), mimetype=f"image/{row['format']}", max_age=86400)
