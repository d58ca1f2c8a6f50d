"""Fleet JSON API: devices, commands, algorithms (publish, review, try it out), deployments,
artifacts and edge captures (the last two authenticate with the DEVICE token)."""

from __future__ import annotations

from flask import Response, current_app, g, jsonify, request, send_file

from detkit.errors import BadInput, Forbidden, NotFound, Unauthorized, Unavailable
from hub import auth
from hub.api import bp
from hub.api.util import body, database, get_field, query_int, state, str_list
from hub.fleet import algorithms as algos
from hub.fleet import captures
from hub.fleet import deployments as deps
from hub.fleet import devices as devs
from hub.fleet.service import fleet_of
from hub.store import fleet as fleet_store
from hub.store import fleet_algorithms as algo_store
from hub.store import fleet_deployments as dep_store
from hub.store import fleet_records as records_store
from hub.store import projects as project_store
from hub.store import users as user_store


def _fleet(required: bool = True):
    service = fleet_of(current_app)
    if service is None and required:
        raise Unavailable("the fleet is not connected in this hub process (YMIR_FLEET=0?)")
    return service


def _project_id(value) -> int | None:
    if value in (None, ""):
        return None
    return project_store.find_project(database(), value)["id"]


# --- fleet ----------------------------------------------------------------------------------------


@bp.get("/fleet")
def fleet_info():
    service = _fleet(required=False)
    return jsonify({"enabled": service is not None, **(service.info() if service else {}),
                    "records": records_store.count_records(database())})


# --- devices --------------------------------------------------------------------------------------


@bp.get("/devices")
def list_devices():
    db = database()
    return jsonify({"devices": devs.summaries(db, fleet_store.list_devices(db, request.args.get("tag")))})


@bp.post("/devices")
@auth.require_admin
def provision_device():
    data = body()
    device = devs.provision(
        database(), get_field(data, "id", str, required=True), get_field(data, "name", str, default=""),
        str_list(data, "tags") or [], _project_id(data.get("project")))
    return jsonify({**device, "hub_public_key": algos.public_key(state().settings)}), 201


@bp.get("/fleet/public-key")
def fleet_public_key():
    """The key devices check package signatures with (the agent's ``hub_public_key``)."""
    return jsonify({"hub_public_key": algos.public_key(state().settings)})


@bp.get("/devices/<device_id>")
def get_device(device_id: str):
    return jsonify(devs.detail(database(), device_id))


@bp.patch("/devices/<device_id>")
@auth.require_admin
def edit_device(device_id: str):
    data = body()
    return jsonify(fleet_store.update_device(database(), device_id, name=get_field(data, "name", str),
                                             tags=str_list(data, "tags")))


@bp.delete("/devices/<device_id>")
@auth.require_admin
def remove_device(device_id: str):
    devs.remove(database(), device_id, _fleet(required=False))
    return jsonify({"deleted": device_id})


@bp.post("/devices/<device_id>/token")
@auth.require_admin
def rotate_device_token(device_id: str):
    return jsonify(devs.rotate_token(database(), device_id))


@bp.get("/devices/<device_id>/metrics")
def device_metrics(device_id: str):
    fleet_store.get_device(database(), device_id)
    return jsonify({"metrics": fleet_store.metrics_series(database(), device_id, query_int("limit", 300, minimum=1,
                                                                                          maximum=2000))})


@bp.get("/devices/<device_id>/predictions")
def device_predictions(device_id: str):
    fleet_store.get_device(database(), device_id)
    return jsonify({"count": records_store.count_records(database(), device_id),
                    "recent": records_store.recent_records(database(), device_id,
                                                           query_int("limit", 50, minimum=1, maximum=1000))})


@bp.post("/devices/<device_id>/commands")
def device_command(device_id: str):
    data = body()
    fleet_store.get_device(database(), device_id)
    action = get_field(data, "action", str, required=True)
    deployment = get_field(data, "deployment", str, default="")
    if action in ("enable", "disable") and deployment:
        fleet_store.set_slot_enabled(database(), device_id, deployment, action == "enable")
    try:
        cid = _fleet().send_command(device_id, action, deployment, **(get_field(data, "args", dict) or {}))
    except ValueError as exc:  # the protocol refused the command (unknown action, missing deployment)
        raise BadInput(str(exc)) from None
    return jsonify(fleet_store.get_command(database(), cid)), 202


@bp.get("/commands/<command_id>")
def get_command(command_id: str):
    return jsonify(fleet_store.get_command(database(), command_id))


@bp.delete("/devices/<device_id>/algorithms/<name>")
def remove_device_algorithm(device_id: str, name: str):
    deps.remove_algorithm(database(), device_id, name)
    service = _fleet(required=False)
    if service:
        service.wake()
    return jsonify({"device": device_id, "removed": name})


# --- device endpoints (device token) ----------------------------------------------------------


@bp.get("/artifacts/<sha256>")
def get_artifact(sha256: str):
    """A package archive by sha256, for a device token (or a user's API token); Range supported."""
    header = request.headers.get("Authorization", "")
    db = database()
    if not header.lower().startswith("bearer "):
        raise Unauthorized("device token required: send 'Authorization: Bearer <device token>'")
    if user_store.user_for_token(db, header[7:].strip()) is None:
        devs.authenticate(db, header)
    row = algo_store.get_artifact(db, sha256.lower())
    path = algos.artifacts_dir(state().settings) / row["filename"]
    if not path.is_file():
        raise NotFound(f"artifact {sha256[:12]} is missing from the workspace")
    return send_file(path, mimetype="application/zip", conditional=True, etag=sha256, download_name=row["filename"],
                     max_age=3600)


@bp.post("/devices/<device_id>/captures")
def upload_capture(device_id: str):
    """A frame + its predictions from a device (what ``agent/uplink.py`` sends)."""
    db = database()
    device = devs.authenticate(db, request.headers.get("Authorization", ""), device_id)
    frame = request.files.get("frame")
    if frame is None:
        raise BadInput("multipart field 'frame' (the image) is required")
    meta = captures.parse_meta(request.form.get("meta"))
    result = captures.ingest_capture(db, state().settings, device, frame.read(), meta)
    return jsonify(result), (200 if result["duplicate"] else 201)


# --- algorithms -----------------------------------------------------------------------------------


def _algorithm(algorithm_id: int) -> dict:
    return algos.get_visible(database(), algorithm_id, g.user)


@bp.get("/algorithms")
def list_algorithms():
    scope = request.args.get("scope", "mine")
    db = database()
    table = {
        "mine": lambda: algo_store.list_algorithms(db, owner_id=g.user["id"]),
        "public": lambda: algo_store.list_algorithms(db, visibility="public"),
        "pending": lambda: algo_store.list_algorithms(db, visibility="pending"),
        "all": lambda: [a for a in algo_store.list_algorithms(db) if algos.visible_to(a, g.user)],
    }
    if scope not in table:
        raise BadInput(f"scope {scope!r}: one of {', '.join(table)}")
    return jsonify({"algorithms": table[scope]()})


@bp.post("/algorithms")
def publish_algorithm():
    """Publish a model stage (JSON ``{"model_id", "stage"}``) or a package zip (multipart ``file``)."""
    settings = state().settings
    if request.files:
        upload = request.files.get("file")
        if upload is None:
            raise BadInput("multipart field 'file' (a model package zip) is required")
        algo = algos.publish_upload(
            database(), settings, upload, name=request.form.get("name") or None, title=request.form.get("title", ""),
            description=request.form.get("description", ""), project_id=_project_id(request.form.get("project")),
            owner_id=g.user["id"])
        return jsonify(algo), 201
    data = body()
    algo = algos.publish_model(database(), settings, get_field(data, "model_id", int, required=True),
                               stage=get_field(data, "stage", str), name=get_field(data, "name", str),
                               title=get_field(data, "title", str, default=""),
                               description=get_field(data, "description", str, default=""), owner_id=g.user["id"])
    return jsonify(algo), 201


@bp.get("/algorithms/<int:algorithm_id>")
def get_algorithm(algorithm_id: int):
    return jsonify(_algorithm(algorithm_id))


@bp.post("/algorithms/<int:algorithm_id>/publish")
def request_public(algorithm_id: int):
    return jsonify(algos.request_public(database(), algorithm_id, g.user))


@bp.post("/algorithms/<int:algorithm_id>/review")
@auth.require_admin
def review_algorithm(algorithm_id: int):
    data = body()
    return jsonify(algos.review(database(), algorithm_id, get_field(data, "approve", bool, required=True),
                                get_field(data, "note", str, default=""), g.user))


@bp.post("/algorithms/<int:algorithm_id>/try")
def try_algorithm(algorithm_id: int):
    """Run the algorithm on an uploaded image (multipart ``image``) or ``{"url"}``; ``?format=png``
    answers the image with boxes drawn."""
    algo = _algorithm(algorithm_id)
    if request.files:
        f = request.files.get("image")
        if f is None:
            raise BadInput("multipart field 'image' is required")
        image = f.read()
        conf = request.form.get("conf", "0.25")
    else:
        data = body()
        image = algos.fetch_image(get_field(data, "url", str, required=True))
        conf = data.get("conf", 0.25)
    try:
        conf = float(conf)
    except (TypeError, ValueError):
        raise BadInput(f"conf: expected a number, got {conf!r}") from None
    if not 0 <= conf <= 1:
        raise BadInput(f"conf {conf}: within [0, 1]")
    result = algos.try_image(state().settings, algo, image, conf)
    png = result.pop("png")
    if request.args.get("format") == "png":
        return Response(png, mimetype="image/png")
    return jsonify(result)


# --- deployments ----------------------------------------------------------------------------------


@bp.get("/deployments")
def list_deployments():
    return jsonify({"deployments": dep_store.list_deployments(database(), limit=query_int("limit", 200, minimum=1))})


@bp.post("/deployments")
def create_deployment():
    data = body()
    dep, created = deps.deploy(
        database(), algorithm_id=get_field(data, "algorithm_id", int, required=True),
        target=get_field(data, "target", str, required=True), backend=get_field(data, "backend", str),
        settings=get_field(data, "settings", dict), name=get_field(data, "name", str),
        batch_percent=get_field(data, "batch_percent", float), success_threshold=get_field(data, "success_threshold",
                                                                                             float),
        max_failures=get_field(data, "max_failures", int),
        user_id=None if g.user["role"] == "admin" else g.user["id"])
    service = _fleet(required=False)
    if service:
        service.wake()
    return jsonify(dep), (201 if created else 200)


@bp.get("/deployments/<int:deployment_id>")
def get_deployment(deployment_id: int):
    dep = dep_store.get_deployment(database(), deployment_id)
    return jsonify({**dep, "devices": dep_store.rows(database(), deployment_id)})


@bp.post("/deployments/<int:deployment_id>/rollback")
def rollback_deployment(deployment_id: int):
    dep = dep_store.get_deployment(database(), deployment_id)
    if g.user["role"] != "admin" and dep["created_by"] != g.user["id"]:
        raise Forbidden("only the user who deployed it or an administrator may roll it back")
    dep = deps.rollback(database(), deployment_id)
    service = _fleet(required=False)
    if service:
        service.wake()
    return jsonify(dep)
