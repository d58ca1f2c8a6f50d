"""Labeling tasks: the interface of :mod:`hub.labeling` (create, label image by image, finish into a version).

A task covers every image of one dataset version. Each image is ``pending`` until saved ``done``; its labels are
the boxes last saved, else (never saved) the version's predictions of the task's classes as pre-annotations
(``source: prediction``). ``lease_next`` hands each labeler the next pending image nobody else holds: a lease
lives ``ttl`` seconds and is dropped when its holder asks for another image. ``finish_task`` turns the labels
into a new ready version (operation ``label``) whose GT boxes carry their source as the box tag ``source``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from detkit.errors import BadInput, Conflict, NotFound
from hub.db import Database
from hub.store import classes as classes_store
from hub.store import datasets as datasets_store
from hub.store import labeling as store
from hub.store import projects as projects_store
from hub.store import users as users_store
from hub.store.workspace import Workspace

STATES = ("open", "in_progress", "done", "cancelled")
BACKENDS = ("builtin", "label_studio")
LEASE_TTL = 300.0
MAX_GUIDELINE = 10 * 1024 * 1024
GUIDELINE_TYPES = (".pdf", ".md", ".markdown", ".txt")


def _backend(key: str):
    """The backend module's object (``open``/``sync``/``close``), or None for the built-in annotator."""
    if key not in BACKENDS:
        raise BadInput(f"labeling backend {key!r}: choose one of {', '.join(BACKENDS)}")
    if key == "builtin":
        return None
    try:
        from hub.labeling.label_studio import BACKEND
    except ImportError:
        raise BadInput("labeling backend label_studio is not available in this hub (hub.labeling.label_studio is "
                       "missing): use the built-in annotator") from None
    return BACKEND


def create_task(ws: Workspace, *, version_id: int, classes=None, name: str = "", assignees=(),
                pre_annotations: bool = True, backend: str = "builtin", created_by: int | None = None) -> dict:
    version = datasets_store.require_ready(ws.database, version_id)
    if classes:
        names = []
        for c in classes:
            main = classes_store.get_class(ws.database, c)["name"]  # aliases resolve; NotFound names it
            if main not in names:
                names.append(main)
    else:
        names = projects_store.get_project(ws.database, version["project_id"])["targets"]
    if not names:
        raise BadInput("labeling task: no classes to label (give classes or set the project's target classes)")
    if version["images"] == 0:
        raise BadInput(f"labeling task: version {version_id} has no images")
    user_ids = []
    for a in assignees or ():
        try:
            user = users_store.get_user_by_name(ws.database, a) if isinstance(a, str) else {"id": int(a)}
        except NotFound:
            raise BadInput(f"labeling task: assignee {a!r} is not a hub user") from None
        user_ids.append(user["id"])
    impl = _backend(backend)
    task_id = store.create_task(ws.database, project_id=version["project_id"], version_id=version_id,
                                name=name or f"label {version.get('group_name', '')} v{version.get('number', '')}",
                                classes=names, backend=backend, pre_annotations=pre_annotations,
                                assignee_ids=user_ids, created_by=created_by)
    if impl is not None:
        try:
            extra = impl.open(ws, get_task(ws.database, task_id)) or {}
        except Exception:
            store.update_task(ws.database, task_id, state="cancelled", finished_at=time.time())
            raise
        store.update_task(ws.database, task_id, backend_state=extra)
    return get_task(ws.database, task_id)


def get_task(database: Database, task_id: int) -> dict:
    return store.get_task(database, task_id)


def list_tasks(database: Database, project_id: int | None = None, states=None) -> list[dict]:
    return [store.get_task(database, i) for i in store.list_task_ids(database, project_id, states)]


def _with_labels(database: Database, task: dict, rows: list[dict]) -> list[dict]:
    """Each image with its current boxes: saved ones, else the version's predictions (pre-annotations)."""
    never = [r["sha1"] for r in rows if r["saved"] is None]
    preds = store.pred_boxes(database, task["version_id"], never) if task["pre_annotations"] and never else {}
    wanted = set(task["classes"])
    for r in rows:
        if r["saved"] is not None:
            r["boxes"], r["source"] = r["saved"], "saved"
        else:
            r["boxes"] = [b for b in preds.get(r["sha1"], []) if b["class"] in wanted]
            r["source"] = "prediction" if r["boxes"] else "none"
        del r["saved"]
    return rows


def task_images(database: Database, task_id: int, *, offset: int = 0, limit: int | None = None) -> list[dict]:
    task = store.get_task(database, task_id)
    return _with_labels(database, task, store.task_images(database, task_id, offset=offset, limit=limit))


def image_state(database: Database, task_id: int, sha1: str) -> dict:
    task = store.get_task(database, task_id)
    row = _with_labels(database, task, [store.task_image(database, task_id, sha1)])[0]
    row["lease"] = ({"user_id": row["lease_user_id"], "until": row["lease_until"]}
                    if row["lease_user_id"] and (row["lease_until"] or 0) > time.time() else None)
    return row


def lease_next(ws: Workspace, task_id: int, user_id: int, *, after: str | None = None,
               ttl: float = LEASE_TTL) -> str | None:
    task = store.get_task(ws.database, task_id)
    if task["state"] in ("done", "cancelled"):
        return None
    return store.lease_next(ws.database, task_id, user_id, after, ttl)


def check_boxes(task: dict, boxes, width: int, height: int, where: str) -> list[dict]:
    """Boxes as stored (pixels, clipped to the image); BadInput naming the box for anything else."""
    if not isinstance(boxes, list):
        raise BadInput(f"{where}: boxes must be a list")
    names = {c: c for c in task["classes"]}
    out = []
    for i, b in enumerate(boxes):
        if not isinstance(b, dict):
            raise BadInput(f"{where}: box {i} is not an object")
        try:
            x1, y1, x2, y2 = (float(b[k]) for k in ("x1", "y1", "x2", "y2"))
        except (KeyError, TypeError, ValueError):
            raise BadInput(f"{where}: box {i} needs numbers x1, y1, x2, y2") from None
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise BadInput(f"{where}: box {i} has a coordinate that is not finite")
        raw = str(b.get("class", ""))
        try:
            cls = classes_store.normalize(raw)
        except BadInput:
            cls = ""
        if cls not in names:
            raise BadInput(f"{where}: box {i} has class {raw!r}, not one of the task's classes "
                           f"({', '.join(task['classes'])})")
        x1, x2 = sorted((max(0.0, min(x1, width)), max(0.0, min(x2, width))))
        y1, y2 = sorted((max(0.0, min(y1, height)), max(0.0, min(y2, height))))
        if x2 - x1 < 1e-6 or y2 - y1 < 1e-6:
            raise BadInput(f"{where}: box {i} ({raw}) has zero size inside the {width}x{height} image")
        source = b.get("source") if b.get("source") in ("human", "prediction") else "human"
        out.append({"x1": x1, "y1": y1, "x2": x2, "y2": y2, "class": names[cls], "source": source})
    return out


def _writable(task: dict) -> None:
    if task["state"] in ("done", "cancelled"):
        raise Conflict(f"labeling task {task['id']} is {task['state']}: its labels can no longer change")


def save_labels(ws: Workspace, task_id: int, sha1: str, boxes, *, user_id: int | None = None,
                done: bool = True) -> dict:
    task = store.get_task(ws.database, task_id)
    _writable(task)
    row = store.task_image(ws.database, task_id, sha1)
    if (row["lease_user_id"] and user_id is not None and row["lease_user_id"] != user_id
            and (row["lease_until"] or 0) > time.time()):
        raise Conflict(f"image {sha1} is being labeled by another user (lease until "
                       f"{time.strftime('%H:%M:%S', time.gmtime(row['lease_until']))} UTC)")
    clean = check_boxes(task, boxes, row["width"], row["height"], f"image {sha1}")
    store.save_image(ws.database, task_id, sha1, clean, bool(done), user_id)
    return image_state(ws.database, task_id, sha1)


def apply_imported(ws: Workspace, task_id: int, labels: dict[str, list], *, source: str = "import",
                   user_id: int | None = None) -> dict:
    """Save many images' labels at once (file imports, Label Studio syncs): every box checked first; a bad box
    is dropped with a line in the report; nothing is saved when an image is unknown to the task."""
    task = store.get_task(ws.database, task_id)
    _writable(task)
    report = {"source": source, "images": 0, "boxes": 0, "problems": []}
    clean: dict[str, list[dict]] = {}
    for sha1, boxes in labels.items():
        row = store.task_image(ws.database, task_id, sha1)  # NotFound: an image of another task
        kept = []
        for i, b in enumerate(boxes):
            try:
                kept += check_boxes(task, [b], row["width"], row["height"], f"image {sha1} box {i}")
            except BadInput as exc:
                report["problems"].append(exc.message)
        clean[sha1] = kept
        report["images"] += 1
        report["boxes"] += len(kept)
    store.save_many(ws.database, task_id, clean, user_id)
    return report


def finish_task(ws: Workspace, task_id: int, *, user_id: int | None = None, name: str | None = None,
                accept_predictions: bool = False) -> dict:
    """A new ready version (operation ``label``) of the task's images, GT = their labels; the task is done."""
    task = store.get_task(ws.database, task_id)
    _writable(task)
    impl = _backend(task["backend"])
    if impl is not None:
        impl.sync(ws, task)  # a failed pull raises before anything changes
    images = task_images(ws.database, task_id)
    ids = classes_store.ids_by_main_name(ws.database)
    rows, unlabeled = [], 0
    for img in images:
        if img["source"] != "saved" and not (accept_predictions and img["source"] == "prediction"):
            unlabeled += img["state"] != "done"
            continue
        for b in img["boxes"]:
            rows.append((img["sha1"], ids[b["class"]], b["x1"], b["y1"], b["x2"], b["y2"],
                         json.dumps({"source": b.get("source") or "human"})))
    src = datasets_store.get_version(ws.database, task["version_id"])
    group = (datasets_store.get_or_create_group(ws.database, task["project_id"], name)["id"] if name
             else src["group_id"])
    report = {"operation": "label", "task_id": task_id, "images": len(images), "gt_boxes": len(rows),
              "unlabeled_images": unlabeled, "accept_predictions": bool(accept_predictions)}
    version = datasets_store.create_version(
        ws.database, group, source={"kind": "label", "task_id": task_id, "backend": task["backend"]},
        operation="label", parent_ids=[task["version_id"]], note=f"labels of task {task_id} ({task['name']})",
        created_by=user_id)
    with ws.database.write() as db:
        store.fill_labeled_version(db, version["id"], task["version_id"], rows, report)
    store.update_task(ws.database, task_id, state="done", result_version_id=version["id"], finished_at=time.time())
    if impl is not None:
        impl.close(ws, task)
    return get_task(ws.database, task_id)


def cancel_task(ws: Workspace, task_id: int, *, user_id: int | None = None) -> dict:
    task = store.get_task(ws.database, task_id)
    _writable(task)
    store.update_task(ws.database, task_id, state="cancelled", finished_at=time.time())
    impl = _backend(task["backend"])
    if impl is not None:
        impl.close(ws, task)
    return get_task(ws.database, task_id)


def sync_task(ws: Workspace, task_id: int) -> dict:
    task = store.get_task(ws.database, task_id)
    impl = _backend(task["backend"])
    if impl is None:
        return {"backend": "builtin", "images": 0, "boxes": 0, "problems": [],
                "note": "the built-in annotator saves as you go: nothing to pull"}
    _writable(task)
    return impl.sync(ws, task)


def _guideline_dir(ws: Workspace, task_id: int) -> Path:
    return Path(ws.settings.home) / "labeling" / str(task_id)


def set_guideline(ws: Workspace, task_id: int, filename: str, data: bytes) -> dict:
    store.get_task(ws.database, task_id)
    name = Path(filename or "").name
    if not name.lower().endswith(GUIDELINE_TYPES):
        raise BadInput(f"guideline {name!r}: upload a PDF or Markdown file")
    if len(data) > MAX_GUIDELINE:
        raise BadInput(f"guideline {name!r}: larger than {MAX_GUIDELINE // (1024 * 1024)} MB")
    if name.lower().endswith(".pdf") and not data.startswith(b"%PDF"):
        raise BadInput(f"guideline {name!r}: not a PDF file")
    folder = _guideline_dir(ws, task_id)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("guideline*"):
        old.unlink()
    (folder / f"guideline{Path(name).suffix.lower()}").write_bytes(data)
    store.update_task(ws.database, task_id, guideline=name)
    return get_task(ws.database, task_id)


def guideline_path(ws: Workspace, task_id: int) -> Path | None:
    task = store.get_task(ws.database, task_id)
    if not task.get("guideline"):
        return None
    path = _guideline_dir(ws, task_id) / f"guideline{Path(task['guideline']).suffix.lower()}"
    if not path.exists():
        raise NotFound(f"the guideline file of task {task_id} is missing")
    return path
