"""A labeling task's files: export as Label Studio JSON, VOC zip or COCO JSON; import Label Studio's JSON export.

What an export holds, per image of the task:

* the labels saved in the hub (the GT side; an image never saved has none, an image saved with no boxes has an
  empty one), each box tagged with its ``source`` (``human`` | ``prediction``);
* the pre-annotations (the source version's predictions of the task's classes, with their confidences) as
  the prediction side: VOC ``pred/*.xml``, Label Studio ``predictions``. COCO JSON holds the GT side only.

VOC and COCO are written by the dataset exporters (:mod:`hub.datasets.export`), so a VOC zip imports back into
the hub as a dataset. A Label Studio export carries our asset id in each task's ``data.ymir_sha1``: that is what an
import matches on (Label Studio ignores imported task ids).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput
from hub.datasets import export as exporters
from hub.labeling import tasks
from hub.store.workspace import Workspace

FORMATS = {"ls": ".json", "voc": ".zip", "coco": ".json"}
MAX_IMPORT = 200 * 1024 * 1024


def _ann(img: dict, boxes: list[dict], filename: str) -> ImageAnnotation:
    return ImageAnnotation(filename=filename, width=img["width"], height=img["height"], tags=dict(img["tags"]),
                           boxes=[Box(b["x1"], b["y1"], b["x2"], b["y2"], b["class"], confidence=b.get("confidence"),
                                      tags={"source": b.get("source") or "human"}) for b in boxes])


def _records(ws: Workspace, task: dict) -> list[SimpleNamespace]:
    """The task's images as the dataset exporters read them: gt = saved labels, pred = pre-annotations."""
    images = tasks.raw_images(ws.database, task["id"])
    preds = tasks.pre_annotations(ws.database, task, [i["sha1"] for i in images])
    out = []
    for img in images:
        saved = img["saved"]
        out.append(SimpleNamespace(
            sha1=img["sha1"], format=img["format"], width=img["width"], height=img["height"],
            filename=img["filename"], image_quality=img["image_quality"],
            gt=None if saved is None else _ann(img, saved, img["filename"]),
            pred=_ann(img, preds[img["sha1"]], img["filename"]) if preds.get(img["sha1"]) else None))
    return out


def _image_url(ws: Workspace, task: dict, sha1: str) -> str:
    """Where Label Studio fetches an image: the Label Studio backend's token-protected URL when it offers one,
    else the hub's own image route (behind the hub's login) under the hub's public URL."""
    try:
        from hub.labeling import label_studio
    except ImportError:
        label_studio = None
    if label_studio is not None and hasattr(label_studio, "image_url"):
        return label_studio.image_url(ws, task, sha1)
    base = (getattr(ws.settings, "public_url", None) or "").rstrip("/")
    return f"{base}/assets/{sha1}/image"


def _ls_format():
    try:
        from hub.labeling import ls_format
    except ImportError as exc:
        raise BadInput(f"Label Studio JSON is not available in this hub ({exc}): use format voc or coco") from None
    return ls_format


def _ls_json(ws: Workspace, task: dict, records: list[SimpleNamespace]) -> bytes:
    ls_format = _ls_format()

    out = []
    for rec in records:
        pred = [_box_dict(b) for b in rec.pred.boxes] if rec.pred else []
        item = ls_format.task_json(rec.sha1, _image_url(ws, task, rec.sha1), rec.width, rec.height, pred,
                                   task["classes"])
        if rec.gt is not None:
            item["annotations"] = [{"result": ls_format.boxes_to_results([_box_dict(b) for b in rec.gt.boxes],
                                                                         rec.width, rec.height),
                                    "ground_truth": True, "was_cancelled": False}]
        item.setdefault("meta", {})["ymir_task_id"] = task["id"]
        out.append(item)
    return json.dumps(out, indent=1).encode()


def _box_dict(b: Box) -> dict:
    return {"x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2, "class": b.name, "confidence": b.confidence,
            "source": b.tags.get("source", "human")}


def _write_atomic(out: Path, data: bytes) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


def export_name(task: dict, fmt: str) -> str:
    """The download name of an export: ``task-<id>-<format><suffix>``."""
    return f"task-{task['id']}-{fmt}{FORMATS[fmt]}"


def export_task(ws: Workspace, task_id: int, fmt: str, out: str | Path) -> Path:
    """Write a task's labels (and pre-annotations) as ``ls`` (Label Studio JSON), ``voc`` (zip) or ``coco`` (JSON)."""
    if fmt not in FORMATS:
        raise BadInput(f"labeling export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    task = tasks.get_task(ws.database, task_id)
    records = _records(ws, task)
    out = Path(out)
    if fmt == "voc":
        ws.settings.asset_store.ensure_local(r.sha1 for r in records)  # a remote store's cache may lack them
        return exporters.export_voc_zip(records, ws.settings.assets_dir, out)
    if fmt == "coco":
        return exporters.export_coco(records, out.with_suffix(".json"), task["classes"])
    return _write_atomic(out, _ls_json(ws, task, records))


def labels_from_export(ws: Workspace, task: dict, entries) -> dict:
    """The labels to save from parsed Label Studio tasks (:func:`ls_format.parse_export`), matched by sha1.

    Returns ``labels`` (sha1 -> pixel boxes, scaled to the hub's image when Label Studio saw another size),
    ``notes`` (sha1 -> report lines), ``unannotated`` (sha1s without an annotation to import: left as they are),
    ``duplicates`` (sha1s listed twice: the first one counts) and ``unmatched`` (positions without a sha1)."""
    sizes = {r["sha1"]: (r["width"], r["height"]) for r in tasks.raw_images(ws.database, task["id"])}
    labels: dict[str, list] = {}
    notes: dict[str, list[str]] = {}
    unannotated, duplicates, unmatched = [], [], []
    for n, (sha1, width, height, boxes, problems) in enumerate(entries):
        if not sha1:
            unmatched.append(n)
            continue
        if sha1 in labels or sha1 in unannotated:
            duplicates.append(sha1)
            continue
        if boxes is None:
            unannotated.append(sha1)
            continue
        notes[sha1] = [f"image {sha1}: {p}" for p in problems]
        size = sizes.get(sha1)
        if size and width and height and (width, height) != size:
            # Label Studio keeps percents: the same place on the hub's image
            sx, sy = size[0] / width, size[1] / height
            boxes = [{**b, "x1": b["x1"] * sx, "x2": b["x2"] * sx, "y1": b["y1"] * sy, "y2": b["y2"] * sy}
                     for b in boxes]
            notes[sha1].append(f"image {sha1}: the export says {width}x{height}, the image is {size[0]}x{size[1]}: "
                               "boxes scaled to it")
        labels[sha1] = boxes
    return {"labels": labels, "notes": notes, "unannotated": unannotated, "duplicates": duplicates,
            "unmatched": unmatched}


def apply_export_labels(ws: Workspace, task: dict, collected: dict, *, source: str,
                        where: str = "task {n} of the file", user_id: int | None = None) -> dict:
    """Save :func:`labels_from_export`'s labels (``tasks.apply_imported``: all or nothing) and report on them;
    ``where`` names an entry without a sha1 in the report (``{n}``: its position)."""
    labels = collected["labels"]
    if labels:
        report = tasks.apply_imported(ws, task["id"], labels, source=source, user_id=user_id)
    else:
        report = {"source": source, "images": 0, "boxes": 0, "skipped_images": [], "problems": [], "files": []}
    notes = collected["notes"]
    for f in report["files"]:
        extra = notes.get(f["sha1"], [])
        f["problems"] = extra + f["problems"]
        report["problems"] += extra
    report["unannotated_images"] = collected["unannotated"]
    report["duplicate_images"] = collected["duplicates"]
    for n in collected["unmatched"]:
        report["problems"].append(f"{where.format(n=n)}: no data.ymir_sha1 (not exported by this hub), skipped")
    for sha1 in collected["duplicates"]:
        report["problems"].append(f"image {sha1}: listed twice, the first one was imported")
    return report


def import_label_studio(ws: Workspace, task_id: int, data: bytes, *, filename: str = "upload",
                        user_id: int | None = None) -> dict:
    """Save the labels of a Label Studio JSON export into the task, matched by ``data.ymir_sha1``.

    The report says, per file (image) and per box, what was saved, clipped or dropped; tasks without an
    annotation to import leave the image's labels as they were. Nothing is saved when the file cannot be read
    or holds none of the task's images.
    """
    ls_format = _ls_format()
    task = tasks.get_task(ws.database, task_id)
    if len(data) > MAX_IMPORT:
        raise BadInput(f"{filename}: larger than {MAX_IMPORT // (1024 * 1024)} MB")
    try:
        entries = ls_format.parse_export(data)
    except BadInput as exc:
        raise BadInput(f"{filename}: {exc.message}") from None
    collected = labels_from_export(ws, task, entries)
    if not collected["labels"]:
        raise BadInput(f"{filename}: no annotated task to import ({len(entries)} task(s) in the file, "
                       f"{len(collected['unannotated'])} without an annotation, "
                       f"{len(collected['unmatched'])} without data.ymir_sha1)")
    return apply_export_labels(ws, task, collected, source=f"file {filename}", user_id=user_id)
