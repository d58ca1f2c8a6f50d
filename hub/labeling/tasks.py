"""Labeling tasks: the interface of :mod:`hub.labeling` (create, label image by image, finish into a version).

A task covers every image of one dataset version. Each image is ``pending`` until saved ``done``; its labels are
the boxes last saved, else (never saved) the version's predictions of the task's classes as pre-annotations
(``source: prediction``). ``lease_next`` hands each labeler the next pending image nobody else holds: a lease
lives ``ttl`` seconds and is dropped when its holder asks for another image. ``finish_task`` turns the labels
into a new ready version (operation ``label``) whose GT boxes carry their source as the box tag ``source``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from detkit.errors import BadInput, Conflict, NotFound
from hub.db import Database
from hub.labeling import checks
from hub.labeling.backends import get_backend
from hub.store import classes as classes_store
from hub.store import datasets as datasets_store
from hub.store import labeling as store
from hub.store import projects as projects_store
from hub.store import users as users_store
from hub.store.workspace import Workspace

STATES = ("open", "in_progress", "done", "cancelled")
LEASE_TTL = 300.0
MAX_GUIDELINE = 10 * 1024 * 1024
GUIDELINE_TYPES = (".pdf", ".md", ".markdown", ".txt")


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
            user = (users_store.get_user_by_name(ws.database, a) if isinstance(a, str)
                    else users_store.get_user(ws.database, int(a)))
        except NotFound:
            raise BadInput(f"labeling task: assignee {a!r} is not a hub user") from None
        user_ids.append(user["id"])
    impl = get_backend(backend)
    task_id = store.create_task(ws.database, project_id=version["project_id"], version_id=version_id,
                                name=name or f"label {version.get('group_name', '')} v{version.get('number', '')}",
                                classes=names, backend=backend, pre_annotations=pre_annotations,
                                assignee_ids=user_ids, created_by=created_by)
    try:
        extra = impl.open(ws, get_task(ws.database, task_id)) or {}
    except Exception:
        store.delete_task(ws.database, task_id)  # the backend refused: no half-made task is left behind
        raise
    if extra:
        store.update_task(ws.database, task_id, backend_state=extra)
    return get_task(ws.database, task_id)


def get_task(database: Database, task_id: int) -> dict:
    return store.get_task(database, task_id)


def list_tasks(database: Database, project_id: int | None = None, states=None) -> list[dict]:
    return [store.get_task(database, i) for i in store.list_task_ids(database, project_id, states)]


def pre_annotations(database: Database, task: dict, sha1s: list[str]) -> dict[str, list[dict]]:
    """The pre-annotations of some images: the source version's predictions of the task's classes (none when
    the task was made without pre-annotations)."""
    if not task["pre_annotations"] or not sha1s:
        return {}
    wanted = set(task["classes"])
    preds = store.pred_boxes(database, task["version_id"], sha1s)
    return {s: kept for s, boxes in preds.items() if (kept := [b for b in boxes if b["class"] in wanted])}


def raw_images(database: Database, task_id: int) -> list[dict]:
    """The task's image rows as stored: ``saved`` holds the saved boxes, None when never saved."""
    return store.task_images(database, task_id)


def _with_labels(database: Database, task: dict, rows: list[dict]) -> list[dict]:
    """Each image with its current boxes: saved ones, else the version's predictions (pre-annotations)."""
    preds = pre_annotations(database, task, [r["sha1"] for r in rows if r["saved"] is None])
    for r in rows:
        if r["saved"] is not None:
            r["boxes"], r["source"] = r["saved"], "saved"
        else:
            r["boxes"] = preds.get(r["sha1"], [])
            r["source"] = "prediction" if r["boxes"] else "none"
        del r["saved"]
    return rows


def task_images(database: Database, task_id: int, *, offset: int = 0, limit: int | None = None) -> list[dict]:
    task = store.get_task(database, task_id)
    return _with_labels(database, task, store.task_images(database, task_id, offset=offset, limit=limit))


def image_state(database: Database, task_id: int, sha1: str) -> dict:
    task = store.get_task(database, task_id)
    row = _with_labels(database, task, [store.task_image(database, task_id, sha1)])[0]
    row["lease"] = None
    if row["lease_user_id"] and (row["lease_until"] or 0) > time.time():
        try:
            holder = users_store.get_user(database, row["lease_user_id"])["username"]
        except NotFound:
            holder = None
        row["lease"] = {"user_id": row["lease_user_id"], "username": holder, "until": row["lease_until"]}
    return row


def lease_next(ws: Workspace, task_id: int, user_id: int, *, after: str | None = None,
               ttl: float = LEASE_TTL) -> str | None:
    task = store.get_task(ws.database, task_id)
    if task["state"] in ("done", "cancelled"):
        return None
    return store.lease_next(ws.database, task_id, user_id, after, ttl)


def _writable(task: dict) -> None:
    if task["state"] in ("done", "cancelled"):
        raise Conflict(f"labeling task {task['id']} is {task['state']}: its labels can no longer change")


def save_labels(ws: Workspace, task_id: int, sha1: str, boxes, *, user_id: int | None = None,
                done: bool = True) -> dict:
    """Save one image's boxes (strict: a bad box is refused with its number and nothing is stored)."""
    task = store.get_task(ws.database, task_id)
    _writable(task)
    row = store.task_image(ws.database, task_id, sha1)
    if (row["lease_user_id"] and user_id is not None and row["lease_user_id"] != user_id
            and (row["lease_until"] or 0) > time.time()):
        holder = image_state(ws.database, task_id, sha1)["lease"] or {}
        raise Conflict(f"image {sha1} is being labeled by another user ({holder.get('username') or '?'}, lease "
                       f"until {time.strftime('%H:%M:%S', time.gmtime(row['lease_until']))} UTC)")
    clean = checks.check_boxes(task["classes"], boxes, row["width"], row["height"], f"image {sha1}")
    if not store.save_image(ws.database, task_id, sha1, clean, bool(done), user_id, lease_ttl=LEASE_TTL):
        _writable(store.get_task(ws.database, task_id))  # finished or cancelled meanwhile
    return image_state(ws.database, task_id, sha1)


def apply_imported(ws: Workspace, task_id: int, labels: dict[str, list], *, source: str = "import",
                   user_id: int | None = None) -> dict:
    """Save many images' labels as done at once (file imports, Label Studio syncs), all or nothing.

    Boxes are checked leniently: one sticking out of its image is clipped, one of an unknown class or of zero size
    is dropped, each with a line in the report (``problems``, and per image in ``files``). Images that are not in
    the task are skipped and reported; when none of them is (an export of another task) nothing is saved and
    BadInput says so.
    """
    task = store.get_task(ws.database, task_id)
    _writable(task)
    if not isinstance(labels, dict):
        raise BadInput(f"{source}: expected labels by image sha1")
    report: dict = {"source": source, "images": 0, "boxes": 0, "skipped_images": [], "problems": [], "files": []}
    clean: dict[str, list[dict]] = {}
    for sha1, boxes in labels.items():
        try:
            row = store.task_image(ws.database, task_id, str(sha1))
        except NotFound:
            report["skipped_images"].append(sha1)
            report["problems"].append(f"image {sha1}: not in labeling task {task_id}, skipped")
            continue
        kept, problems = checks.clean_boxes(task["classes"], boxes, row["width"], row["height"], f"image {sha1}")
        clean[row["sha1"]] = kept
        report["files"].append({"sha1": row["sha1"], "filename": row["filename"], "boxes": len(kept),
                                "problems": problems})
        report["problems"] += problems
        report["images"] += 1
        report["boxes"] += len(kept)
    if labels and not clean:
        raise BadInput(f"{source}: none of its {len(labels)} image(s) is in labeling task {task_id} "
                       "(is it the export of another task?); nothing was saved")
    if not store.save_many(ws.database, task_id, clean, user_id):
        _writable(store.get_task(ws.database, task_id))
    return report


def _labeled_rows(ws: Workspace, images: list[dict], accept_predictions: bool) -> tuple[list[tuple], dict]:
    """The GT rows of the labeled version and counts of the images left without labels."""
    ids = classes_store.ids_by_main_name(ws.database)
    rows, unlabeled, pending, accepted = [], [], 0, 0
    for img in images:
        if img["source"] == "saved":
            pending += img["state"] != "done"
        elif accept_predictions and img["source"] == "prediction":
            accepted += 1
        else:
            unlabeled.append(img["sha1"])
            continue
        for b in img["boxes"]:
            rows.append((img["sha1"], ids[b["class"]], b["x1"], b["y1"], b["x2"], b["y2"],
                         json.dumps({"source": b.get("source") if b.get("source") in checks.SOURCES else "human"})))
    return rows, {"unlabeled_images": len(unlabeled), "unlabeled_sha1s": unlabeled[:100],
                  "saved_not_done_images": pending, "accepted_prediction_images": accepted}


def finish_task(ws: Workspace, task_id: int, *, user_id: int | None = None, name: str | None = None,
                accept_predictions: bool = False) -> dict:
    """A new ready version (operation ``label``) of the task's images, GT = their labels; the task is done.

    An external backend is synced first (a failed pull raises before anything changes). Images never saved keep
    no GT unless ``accept_predictions`` (then their pre-annotations become GT with ``source: prediction``); the
    version's report counts them.
    """
    task = store.get_task(ws.database, task_id)
    _writable(task)
    impl = get_backend(task["backend"])
    sync_report = impl.sync(ws, task) if task["backend"] != "builtin" else None
    src = datasets_store.get_version(ws.database, task["version_id"])
    group = (datasets_store.get_or_create_group(ws.database, task["project_id"], name)["id"]
             if name and name.strip() else src["group_id"])
    version = datasets_store.create_version(
        ws.database, group, source={"kind": "label", "task_id": task_id, "backend": task["backend"]},
        operation="label", parent_ids=[task["version_id"]], note=f"labels of task {task_id} ({task['name']})",
        created_by=user_id)
    try:
        # labels read, version filled and task closed in one write: a save racing the finish is in or refused
        with ws.database.write() as db:
            images = task_images(ws.database, task_id)
            rows, counts = _labeled_rows(ws, images, accept_predictions)
            report = {"operation": "label", "task_id": task_id, "backend": task["backend"], "images": len(images),
                      "gt_boxes": len(rows), "accept_predictions": bool(accept_predictions), **counts,
                      "skipped": []}
            if sync_report is not None:
                report["sync"] = {k: sync_report.get(k) for k in ("images", "boxes") if k in sync_report}
            if not store.mark_done(db, task_id, version["id"]):
                _writable(store.get_task(ws.database, task_id))
                raise Conflict(f"labeling task {task_id} changed state while finishing")
            store.fill_labeled_version(db, version["id"], task["version_id"], rows, report)
    except Exception as exc:
        datasets_store.fail_version(ws.database, version["id"], f"labeling task {task_id}: {exc}")
        raise
    impl.close(ws, store.get_task(ws.database, task_id))
    return get_task(ws.database, task_id)


def cancel_task(ws: Workspace, task_id: int, *, user_id: int | None = None) -> dict:
    """Cancel a task: no version is made, its saved labels stay readable in the task."""
    task = store.get_task(ws.database, task_id)
    _writable(task)
    store.update_task(ws.database, task_id, state="cancelled", finished_at=time.time())
    get_backend(task["backend"]).close(ws, store.get_task(ws.database, task_id))
    return get_task(ws.database, task_id)


def sync_task(ws: Workspace, task_id: int) -> dict:
    """Pull an external backend's labels into the task (the built-in annotator: a report that nothing came)."""
    task = store.get_task(ws.database, task_id)
    impl = get_backend(task["backend"])
    if task["backend"] != "builtin":
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
