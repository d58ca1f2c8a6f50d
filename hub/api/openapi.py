"""The OpenAPI 3.1 document of the JSON API, served at ``GET /api/v1/openapi.json`` (routes register on import).

One declarative table, :data:`ROUTES`, says per ``"METHOD /path"`` what a route takes (path parameters by name
from :data:`PATH_PARAMS`, query parameters, a JSON or multipart body) and what it answers. A test walks the URL
map against it (tests/hub/test_openapi.py): a new route with no row fails, and schemathesis fuzzes a live hub
from the document. Bodies list the fields the views read; unknown fields are ignored, as the views do.
"""

from __future__ import annotations

import functools
import re

from flask import jsonify

from hub.api import bp
from hub.api.util import SQLITE_INT_MAX
from hub.store.users import ROLES, SCOPES

PREFIX = "/api/v1"

# --- schema pieces -------------------------------------------------------------------------------------------

STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
OBJ = {"type": "object"}
ANY: dict = {}
NAMES = {"anyOf": [{"type": "array", "items": STR}, STR], "description": "a list of names or 'a,b'"}
IDS = {"anyOf": [INT, {"type": "array", "items": INT, "minItems": 1}], "description": "an id or a list of ids"}
TAGS = {"type": "object", "additionalProperties": STR}
FILE = {"type": "string", "format": "binary"}


def enum(*values: str) -> dict:
    return {"type": "string", "enum": list(values)}


def obj(required: tuple[str, ...] = (), **props) -> dict:
    """An object schema with ``props``; other fields are allowed (and ignored by the views)."""
    out = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def ranged(minimum: int, maximum: int | None = None) -> dict:
    out = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        out["maximum"] = maximum
    return out


ID = {"type": "integer", "minimum": 0, "maximum": SQLITE_INT_MAX}  # what the URL map's int converter matches
#: every path parameter by name (the URL map's converter must agree: int <-> integer)
PATH_PARAMS = {
    **{n: ID for n in ("algorithm_id", "deployment_id", "group_id", "model_id", "package_id", "task_id",
                        "token_id", "version_id")},
    "ref": {"type": "string", "description": "a project's id or name"},
    "name": STR, "alias": STR, "command_id": STR, "device_id": STR, "job_id": STR, "step": STR, "token": STR,
    "sha1": {"type": "string", "description": "an image's sha1 (40 hex digits)"},
    "sha256": {"type": "string", "description": "an artifact's sha256"},
}

PAGE = {"offset": ranged(0), "limit": ranged(1, 1000)}
EVAL_QUERY = {"gt": INT, "iou": NUM, "conf": NUM}
IMPORT_FORM = obj(("file",), file=FILE, name=STR, unknown=enum("stop", "ignore", "add"))
TRAIN = obj(("train_version_id", "val_version_id"), train_version_id=INT, val_version_id=INT, image=STR,
            targets=NAMES, config=OBJ, pretrained_model_id=INT, pretrained_stage=STR, gpu_count=INT, name=STR,
            timeout_s=NUM)
PREDICT = obj(("version_ids",), model_id=IDS, model_ids=IDS, version_ids=IDS, stage=STR, config=OBJ)
BOX = obj(("x1", "y1", "x2", "y2", "class"), x1=NUM, y1=NUM, x2=NUM, y2=NUM, **{"class": STR}, source=STR)


def op(tag: str, summary: str, *, body: dict | None = None, form: dict | None = None, query: dict | None = None,
       status: int = 200, file: str | None = None, auth: str = "token", admin: bool = False) -> dict:
    """One route's row: ``body`` a JSON body schema, ``form`` a multipart one, ``file`` the media type of a
    file answer, ``auth`` one of ``token`` (a user's API token), ``device`` (a device's token), ``none``."""
    return {"tag": tag, "summary": summary, "body": body, "form": form, "query": query or {}, "status": status,
            "file": file, "auth": auth, "admin": admin}


ROUTES = {
    "GET /openapi.json": op("meta", "this document"),
    "GET /health": op("meta", "liveness and schema check", auth="none"),
    "GET /me": op("users", "the current user"),
    "GET /tokens": op("users", "the current user's tokens (never the token itself)"),
    "POST /tokens": op("users", "make a token (shown once)", body=obj(label=STR, scope=enum(*SCOPES)), status=201),
    "DELETE /tokens/{token_id}": op("users", "revoke one of the current user's tokens"),
    "GET /users": op("users", "list users", admin=True),
    "POST /users": op("users", "add a user", admin=True, status=201,
                      body=obj(("username", "password"), username=STR, password={"type": "string", "minLength": 8},
                               role=enum(*ROLES))),
    "GET /classes": op("classes", "every class with its aliases"),
    "POST /classes": op("classes", "add a class", body=obj(("name",), name=STR, aliases=NAMES), status=201),
    "GET /classes/{name}": op("classes", "a class by main name or alias"),
    "PATCH /classes/{name}": op("classes", "rename a class", body=obj(("name",), name=STR)),
    "POST /classes/{name}/aliases": op("classes", "add an alias", body=obj(("alias",), alias=STR), status=201),
    "DELETE /classes/{name}/aliases/{alias}": op("classes", "remove an alias"),
    "GET /projects": op("projects", "projects", query={"archived": enum("0", "1", "true", "false")}),
    "POST /projects": op("projects", "create a project", status=201,
                         body=obj(("name",), name=STR, description=STR, classes=NAMES, targets=NAMES,
                                  add_classes=BOOL)),
    "GET /projects/{ref}": op("projects", "one project with its targets, dataset groups and versions"),
    "PATCH /projects/{ref}": op("projects", "edit a project", body=obj(name=STR, description=STR, classes=NAMES,
                                                                       targets=NAMES, archived=BOOL)),
    "POST /projects/{ref}/archive": op("projects", "archive a project"),
    "GET /projects/{ref}/datasets": op("datasets", "the project's dataset groups with their versions"),
    "POST /projects/{ref}/datasets/import": op(
        "datasets", "start an import (poll the version)", status=202, form=IMPORT_FORM,
        body=obj(("source",), source=enum("url", "path", "copy", "public"),
                 value={"anyOf": [STR, INT], "description": "URL, path under sharing/ or version id"},
                 name=STR, unknown=enum("stop", "ignore", "add"))),
    "GET /datasets/public": op("datasets", "ready versions of public datasets"),
    "POST /datasets/{group_id}/public": op("datasets", "mark a dataset public or not", body=obj(public=BOOL),
                                           admin=True),
    "GET /versions": op("versions", "every version", query={"project": STR}),
    "GET /versions/{version_id}": op("versions", "state, progress, report, class counts, summary"),
    "GET /versions/{version_id}/assets": op("versions", "a page of images with their boxes",
                                            query={**PAGE, "class": STR, "tag": STR}),
    "POST /versions/{version_id}/filter": op("versions", "a new version by classes and tags", status=201,
                                             body=obj(classes_in=NAMES, classes_out=NAMES, asset_tags=TAGS,
                                                      box_tags=TAGS, name=STR)),
    "POST /versions/{version_id}/merge": op("versions", "merge versions into a new one", status=201,
                                            body=obj(("guests",), guests={"type": "array", "items": INT},
                                                     strategy=enum("stop", "host", "guest"), name=STR)),
    "POST /versions/{version_id}/sample": op("versions", "a random sample as a new version", status=201,
                                             body=obj(count=INT, ratio=NUM, seed=INT, name=STR)),
    "POST /versions/{version_id}/split": op("versions", "split into train/val/test versions", status=201,
                                            body=obj(train=NUM, val=NUM, test=NUM, seed=INT, name=STR)),
    "GET /versions/{version_id}/export": op("versions", "the version as a file", file="application/octet-stream",
                                            query={"format": enum("voc", "coco", "yolo")}),
    "GET /versions/{version_id}/evaluation": op("diagnosis", "evaluate predictions against ground truth",
                                                query={**EVAL_QUERY, "refresh": enum("0", "1")}),
    "POST /evaluations": op("diagnosis", "evaluate (or queue an evaluate job with background)",
                            body=obj(("pred_version_id",), pred_version_id=INT, gt_version_id=INT, iou=NUM,
                                     conf=NUM, refresh=BOOL, background=BOOL)),
    "GET /diagnosis": op("diagnosis", "evaluations side by side",
                         query={"pred": STR, "models": STR, "test": STR, **EVAL_QUERY}),
    "GET /versions/{version_id}/labels": op("diagnosis", "boxes by label (TP, FP, FN, ...)",
                                            query={**EVAL_QUERY, "label": STR, "class": STR, "offset": ranged(0),
                                                   "limit": ranged(1, 1000)}),
    "GET /versions/{version_id}/analysis": op("diagnosis", "dataset analysis", query={"refresh": enum("0", "1")}),
    "POST /versions/{version_id}/analysis": op("diagnosis", "queue an analyze job", status=202),
    "GET /analysis": op("diagnosis", "analyses side by side", query={"versions": STR}),
    "GET /jobs": op("jobs", "jobs", query={"project": STR, "state": STR, "kind": STR}),
    "GET /jobs/{job_id}": op("jobs", "one job with its monitor history"),
    "POST /jobs/{job_id}/cancel": op("jobs", "request cancellation"),
    "GET /jobs/{job_id}/logs": op("jobs", "the job's log", query={"tail": INT}),
    "GET /jobs/{job_id}/history": op("jobs", "per-epoch training history"),
    "POST /projects/{ref}/train": op("jobs", "queue a training job", body=TRAIN, status=202),
    "GET /projects/{ref}/sample-balance": op("jobs", "positive/negative images per class",
                                             query={"version": INT, "classes": STR}),
    "POST /infer": op("jobs", "queue inference jobs", body=PREDICT, status=202),
    "POST /mine": op("jobs", "queue mining-score jobs", body=PREDICT, status=202),
    "GET /models": op("models", "models", query={"project": STR}),
    "GET /models/{model_id}": op("models", "one model"),
    "POST /models/import": op("models", "import a model package or an .onnx", status=201,
                              form=obj(("file",), file=FILE, project=STR, name=STR, classes=STR, image=STR)),
    "GET /models/{model_id}/download": op("models", "the model as a .tar.gz", file="application/gzip"),
    "POST /models/{model_id}/packages": op("models", "queue a conversion into packages", status=202,
                                           body=obj(targets=NAMES, stage=STR, val_version_id=INT,
                                                    calib_version_id=INT, max_drop=NUM)),
    "GET /models/{model_id}/packages": op("models", "the model's packages"),
    "GET /packages/{package_id}/download": op("models", "a package zip", file="application/zip"),
    "GET /images": op("images", "executor images"),
    "POST /images": op("images", "register an executor image", admin=True, status=201,
                       body=obj(("name",), name=STR, docker_ref=STR, local_command={"type": "array", "items": STR},
                                description=STR, read_img_man=BOOL)),
    "POST /images/{name}/copy": op("images", "copy a public image", body=obj(("name",), name=STR), status=201),
    "POST /images/{name}/public": op("images", "mark an image public", body=obj(public=BOOL), admin=True),
    "POST /images/{name}/link": op("images", "link a mining image", body=obj(("mining_image",), mining_image=STR),
                                   admin=True),
    "GET /mining/algorithms": op("mining", "mining-score algorithms"),
    "POST /projects/{ref}/mining/prepare": op(
        "mining", "queue a candidate-pool job", status=202,
        body=obj(("version_ids",), version_ids=IDS, exclude_version_ids=IDS, exact_dedup=BOOL,
                 near_dup_threshold=INT, classes_in=NAMES, classes_out=NAMES, asset_tags=TAGS, sample=INT, seed=INT,
                 chunk_size=INT, chunk_index=INT, name=STR)),
    "POST /projects/{ref}/mining": op(
        "mining", "queue a mining job", status=202,
        body=obj(("model_id", "version_ids", "topk"), model_id=INT, stage=STR, version_ids=IDS, topk=INT,
                 algorithm=STR, class_balanced=BOOL, pre_annotations=BOOL, config=OBJ, name=STR)),
    "GET /projects/{ref}/mining": op("mining", "the project's mining jobs"),
    "GET /mining/versions/{version_id}": op("mining", "a mined version by rank", query=PAGE),
    "POST /projects/{ref}/iteration": op(
        "iterations", "set up the iteration workflow", status=201,
        body=obj(("training_version_id", "mining_version_id", "validation_version_id", "test_version_id"),
                 training_version_id=INT, mining_version_id=INT, validation_version_id=INT, test_version_id=INT,
                 initial_model_id=INT, initial_stage=STR, goal_map=NUM, goal_train_images=INT, params=OBJ)),
    "GET /projects/{ref}/iteration": op("iterations", "the current round"),
    "POST /projects/{ref}/iteration/steps/{step}": op("iterations", "run a step", body=obj(params=OBJ), status=202),
    "POST /projects/{ref}/iteration/steps/{step}/skip": op("iterations", "skip a step"),
    "POST /projects/{ref}/iteration/next": op("iterations", "start the next round", status=201,
                                              body=obj(mining_version_id=INT)),
    "GET /projects/{ref}/iteration/history": op("iterations", "every round"),
    "POST /projects/{ref}/labeling/tasks": op(
        "labeling", "create a labeling task", status=201,
        body=obj(("version_id",), version_id=INT, classes=NAMES, name=STR, assignees=NAMES, pre_annotations=BOOL,
                 backend=enum("builtin", "label-studio"))),
    "GET /projects/{ref}/labeling/tasks": op("labeling", "the project's labeling tasks"),
    "GET /labeling/tasks/{task_id}": op("labeling", "one task"),
    "GET /labeling/tasks/{task_id}/images": op("labeling", "the task's images",
                                               query={"offset": ranged(0), "limit": ranged(1, 10_000)}),
    "GET /labeling/tasks/{task_id}/images/{sha1}": op("labeling", "one image's labels and lease"),
    "PUT /labeling/tasks/{task_id}/images/{sha1}": op("labeling", "save one image's boxes",
                                                      body=obj(("boxes",), boxes={"type": "array", "items": BOX},
                                                               done=BOOL)),
    "POST /labeling/tasks/{task_id}/next": op("labeling", "lease the next image", body=obj(after=STR)),
    "POST /labeling/tasks/{task_id}/finish": op("labeling", "finish into a new version",
                                                body=obj(name=STR, accept_predictions=BOOL)),
    "POST /labeling/tasks/{task_id}/cancel": op("labeling", "cancel the task"),
    "POST /labeling/tasks/{task_id}/sync": op("labeling", "pull labels from Label Studio"),
    "POST /labeling/tasks/{task_id}/guideline": op("labeling", "upload a guideline", form=obj(("file",), file=FILE)),
    "GET /labeling/tasks/{task_id}/guideline": op("labeling", "the guideline file", file="application/octet-stream"),
    "GET /labeling/tasks/{task_id}/export": op("labeling", "the task's labels as a file",
                                               file="application/octet-stream",
                                               query={"format": enum("ls", "voc", "coco")}),
    "POST /labeling/tasks/{task_id}/import": op("labeling", "import a Label Studio JSON export",
                                                form=obj(("file",), file=FILE)),
    "GET /labeling/tasks/{task_id}/ls-images/{token}/{sha1}": op(
        "labeling", "a task image for Label Studio (the token in the URL authenticates)", auth="none",
        file="image/*"),
    "GET /fleet": op("fleet", "fleet status"),
    "GET /fleet/public-key": op("fleet", "the key devices check package signatures with"),
    "GET /devices": op("fleet", "devices", query={"tag": STR}),
    "POST /devices": op("fleet", "provision a device (its token is shown once)", admin=True, status=201,
                        body=obj(("id",), id=STR, name=STR, tags=NAMES, project=STR)),
    "GET /devices/{device_id}": op("fleet", "one device"),
    "PATCH /devices/{device_id}": op("fleet", "edit a device", admin=True, body=obj(name=STR, tags=NAMES)),
    "DELETE /devices/{device_id}": op("fleet", "remove a device", admin=True),
    "POST /devices/{device_id}/token": op("fleet", "rotate the device token", admin=True),
    "GET /devices/{device_id}/metrics": op("fleet", "metrics series", query={"limit": ranged(1, 2000)}),
    "GET /devices/{device_id}/predictions": op("fleet", "recent prediction records", query={"limit": ranged(1, 1000)}),
    "POST /devices/{device_id}/commands": op("fleet", "send a command", status=202,
                                             body=obj(("action",), action=STR, deployment=STR, args=OBJ)),
    "GET /commands/{command_id}": op("fleet", "one command and its result"),
    "DELETE /devices/{device_id}/algorithms/{name}": op("fleet", "remove an algorithm from a device"),
    "GET /artifacts/{sha256}": op("fleet", "a package archive (Range supported)", auth="device",
                                  file="application/zip"),
    "POST /devices/{device_id}/captures": op("fleet", "a frame and its predictions from a device", auth="device",
                                             status=201, form=obj(("frame",), frame=FILE, meta=STR)),
    "GET /algorithms": op("algorithms", "algorithms", query={"scope": enum("mine", "public", "pending", "all")}),
    "POST /algorithms": op("algorithms", "publish a model stage or a package zip", status=201,
                           body=obj(("model_id",), model_id=INT, stage=STR, name=STR, title=STR, description=STR),
                           form=obj(("file",), file=FILE, name=STR, title=STR, description=STR, project=STR)),
    "GET /algorithms/{algorithm_id}": op("algorithms", "one algorithm"),
    "POST /algorithms/{algorithm_id}/publish": op("algorithms", "ask for it to be made public"),
    "POST /algorithms/{algorithm_id}/review": op("algorithms", "approve or refuse a request", admin=True,
                                                 body=obj(("approve",), approve=BOOL, note=STR)),
    "POST /algorithms/{algorithm_id}/try": op("algorithms", "run it on an image", query={"format": enum("json", "png")},
                                              body=obj(("url",), url=STR, conf=NUM),
                                              form=obj(("image",), image=FILE, conf=STR)),
    "GET /deployments": op("deployments", "deployments", query={"limit": ranged(1)}),
    "POST /deployments": op("deployments", "deploy an algorithm to a device or tag", status=201,
                            body=obj(("algorithm_id", "target"), algorithm_id=INT, target=STR, backend=STR,
                                     settings=OBJ, name=STR, batch_percent=NUM, success_threshold=NUM,
                                     max_failures=INT)),
    "GET /deployments/{deployment_id}": op("deployments", "one deployment with its devices"),
    "POST /deployments/{deployment_id}/rollback": op("deployments", "roll back"),
}

ERROR = obj(("error", "code"), error={"type": "string", "description": "what went wrong and where"},
            code={"type": "string", "description": "a stable code: bad_input, not_found, conflict, ..."})
SECURITY = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "a user's API token; its scope narrows the user's rights: read (GET only), write "
                              "(a plain user's rights), admin (administrators' tokens only: all)"},
    "deviceToken": {"type": "http", "scheme": "bearer", "description": "a device's own token (or a user's)"},
}
_AUTH = {"token": [{"bearer": []}], "device": [{"deviceToken": []}], "none": []}


def _operation(key: str, row: dict) -> dict:
    method, path = key.split(" ", 1)
    params = [{"name": n, "in": "path", "required": True, "schema": PATH_PARAMS[n]}
              for n in re.findall(r"{(\w+)}", path)]
    params += [{"name": n, "in": "query", "required": False, "schema": s} for n, s in row["query"].items()]
    answer = {"content": {row["file"]: {"schema": FILE}}} if row["file"] else \
        {"content": {"application/json": {"schema": OBJ}}}
    out = {
        "operationId": re.sub(r"\W+", "_", f"{method.lower()}{path}").strip("_"),
        "tags": [row["tag"]],
        "summary": row["summary"] + (" (administrators only)" if row["admin"] else ""),
        "parameters": params,
        "security": _AUTH[row["auth"]],
        "responses": {str(row["status"]): {"description": "success", **answer},
                      "4XX": {"$ref": "#/components/responses/Error"}},
    }
    if row["admin"]:
        out["x-admin-only"] = True
    content = {}
    if row["body"]:
        content["application/json"] = {"schema": row["body"]}
    if row["form"]:
        content["multipart/form-data"] = {"schema": row["form"]}
    if content:
        required = bool((row["body"] or {}).get("required") or row["form"])
        out["requestBody"] = {"required": required, "content": content}
    return method.lower(), out


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ymir-edge")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


@functools.cache
def build_document() -> dict:
    """The whole OpenAPI document (built once per process: it depends on the code only)."""
    paths: dict[str, dict] = {}
    for key, row in ROUTES.items():
        method, operation = _operation(key, row)
        paths.setdefault(PREFIX + key.split(" ", 1)[1], {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "ymir-edge hub API", "version": _version(),
                 "description": "The hub's JSON API (docs/api*.md). Errors are always {\"error\", \"code\"} "
                                "with the real HTTP status."},
        "paths": paths,
        "components": {"schemas": {"Error": ERROR}, "securitySchemes": SECURITY,
                       "responses": {"Error": {"description": "an error",
                                               "content": {"application/json": {"schema": {
                                                   "$ref": "#/components/schemas/Error"}}}}}},
        "security": [{"bearer": []}],
    }


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI document of this API (any valid token may read it)."""
    return jsonify(build_document())
