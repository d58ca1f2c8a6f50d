"""Read a COCO ground-truth file and a COCO results file into a :class:`FlatSet`.

Follows pycocotools' reading rules so the numbers agree: images are the ground truth's
``images``; classes are its ``categories``; annotations or results for other classes are
dropped; a ground-truth ``area`` field is used as given (``w * h`` when absent), a result's area
is ``w * h``; ``iscrowd`` defaults to 0. Unlike pycocotools, an empty results list is fine and a
bad file gives a :class:`BadInput` saying what and where instead of a crash.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from detkit.errors import BadInput
from detkit.evaluation.data import FlatDT, FlatGT, FlatSet

log = logging.getLogger(__name__)

__all__ = ["read_json", "flat_from_coco", "load_coco_files"]

_NUM = (int, float)


def read_json(path: str | Path, what: str):
    """Parse a JSON file; a missing file or bad JSON raises :class:`BadInput` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise BadInput(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{what} file {path} cannot be read: {e}") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"{what} file {path} is not valid JSON: {e}") from None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_record(i: int, rec, where: str, kind: str, need_score: bool) -> None:
    """Slow path: say exactly what is wrong with record ``i`` (called once something failed)."""
    if not isinstance(rec, dict):
        raise BadInput(f"{where}: {kind} {i} is not an object")
    for key in ("image_id", "category_id", "bbox") + (("score",) if need_score else ()):
        if key not in rec:
            raise BadInput(f"{where}: {kind} {i} has no '{key}'")
    for key in ("image_id", "category_id"):
        if not _is_int(rec[key]):
            raise BadInput(f"{where}: {kind} {i}: '{key}' must be an integer, got {rec[key]!r}")
    bb = rec["bbox"]
    if not (isinstance(bb, list) and len(bb) == 4 and all(isinstance(v, _NUM) for v in bb)):
        raise BadInput(f"{where}: {kind} {i}: 'bbox' must be 4 numbers [x, y, w, h], got {bb!r}")
    if not all(np.isfinite(bb)):
        raise BadInput(f"{where}: {kind} {i}: 'bbox' has NaN or infinity")
    for key in ("score", "area", "iscrowd", "id"):
        if key in rec and not (isinstance(rec[key], _NUM) and np.isfinite(rec[key])):
            raise BadInput(f"{where}: {kind} {i}: '{key}' must be a number, got {rec[key]!r}")


def _columns(records: list, where: str, kind: str, need_score: bool):
    """Vectorised extraction of the fields every record has; slow path only to report errors."""
    if not records:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0)
    try:
        # let numpy infer the id dtype: anything but integers (floats, strings) is an error
        img = np.array([r["image_id"] for r in records])
        cat = np.array([r["category_id"] for r in records])
        bbox = np.array([r["bbox"] for r in records], dtype=np.float64).reshape(len(records), -1)
        score = np.array([r["score"] for r in records], dtype=np.float64) if need_score else None
        if img.dtype.kind not in "iu" or cat.dtype.kind not in "iu" or img.ndim != 1 or cat.ndim != 1:
            raise ValueError("ids")
        if bbox.shape[1] != 4 or not np.isfinite(bbox).all():
            raise ValueError("bbox")
        if score is not None and not np.isfinite(score).all():
            raise ValueError("score")
    except (KeyError, TypeError, ValueError, OverflowError):
        for i, r in enumerate(records):
            _check_record(i, r, where, kind, need_score)
        raise BadInput(f"{where}: malformed {kind}s") from None
    return img.astype(np.int64), cat.astype(np.int64), bbox, score


def _ids(items, where: str, what: str) -> np.ndarray:
    if not isinstance(items, list):
        raise BadInput(f"{where}: '{what}' must be a list")
    ids = []
    for i, it in enumerate(items):
        if not isinstance(it, dict) or not _is_int(it.get("id")):
            raise BadInput(f"{where}: {what}[{i}] needs an integer 'id'")
        ids.append(it["id"])
    return np.array(ids, dtype=np.int64)


def flat_from_coco(gt: dict, results, where_gt: str = "ground truth", where_dt: str = "results") -> FlatSet:
    """Turn a parsed COCO ground-truth dict and a parsed results list into a :class:`FlatSet`."""
    if not isinstance(gt, dict):
        raise BadInput(f"{where_gt}: must be a JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "categories"):
        if key not in gt:
            raise BadInput(f"{where_gt}: no '{key}' list")
    image_ids = np.unique(_ids(gt["images"], where_gt, "images"))
    cats = gt["categories"]
    class_ids = np.unique(_ids(cats, where_gt, "categories"))
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in cats}
    anns = gt.get("annotations", [])
    if not isinstance(anns, list):
        raise BadInput(f"{where_gt}: 'annotations' must be a list")
    if not isinstance(results, list):
        raise BadInput(f"{where_dt}: must be a JSON list of results")

    g_img, g_cat, g_box, _ = _columns(anns, where_gt, "annotation", False)
    try:
        area = np.array([a.get("area", np.nan) for a in anns], dtype=np.float64)
        crowd = np.array([a.get("iscrowd", 0) for a in anns], dtype=np.float64) != 0
        difficult = np.array([a.get("difficult", 0) for a in anns], dtype=np.float64) != 0
        ann_id = np.array([a.get("id", i + 1) for i, a in enumerate(anns)], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        for i, a in enumerate(anns):
            _check_record(i, a, where_gt, "annotation", False)
        raise BadInput(f"{where_gt}: malformed annotations") from None
    area = np.where(np.isnan(area), g_box[:, 2] * g_box[:, 3], area)
    uniq, counts = np.unique(ann_id, return_counts=True)
    if np.any(counts > 1):
        dup = uniq[counts > 1].tolist()
        raise BadInput(f"{where_gt}: duplicate annotation ids (pycocotools would mix them up): {dup[:10]}")
    d_img, d_cat, d_box, d_score = _columns(results, where_dt, "result", True)

    g_ii, g_in_img = _lookup(image_ids, g_img)
    g_ci, g_in_cat = _lookup(class_ids, g_cat)
    keep = g_in_img & g_in_cat
    if not keep.all():
        log.warning("%s: %d annotations of unknown images or categories skipped", where_gt, int((~keep).sum()))
    d_ii, d_in_img = _lookup(image_ids, d_img)
    if not d_in_img.all():
        bad = sorted(set(d_img[~d_in_img].tolist()))
        raise BadInput(f"{where_dt}: results for images not in the ground truth: {bad[:10]}")
    d_ci, d_in_cat = _lookup(class_ids, d_cat)
    if not d_in_cat.all():
        log.warning("%s: %d results of categories not in the ground truth skipped", where_dt, int((~d_in_cat).sum()))
    flat_gt = FlatGT(
        image=g_ii[keep], category=g_ci[keep], xywh=g_box[keep], area=area[keep],
        crowd=crowd[keep], difficult=difficult[keep], ann_id=ann_id[keep],
    )
    flat_dt = FlatDT(image=d_ii[d_in_cat], category=d_ci[d_in_cat], xywh=d_box[d_in_cat], score=d_score[d_in_cat])
    return FlatSet(image_ids=image_ids, class_ids=class_ids, gt=flat_gt, dt=flat_dt, class_names=names)


def _lookup(sorted_ids: np.ndarray, values: np.ndarray):
    """Index of each value in ``sorted_ids`` and whether it is there at all."""
    if len(sorted_ids) == 0:
        return np.zeros(len(values), np.int64), np.zeros(len(values), bool)
    idx = np.clip(np.searchsorted(sorted_ids, values), 0, len(sorted_ids) - 1)
    return idx.astype(np.int64), sorted_ids[idx] == values


def load_coco_files(gt_path: str | Path, dt_path: str | Path) -> FlatSet:
    """Read a COCO ground-truth file and a COCO results file (a list, or ``{"annotations": [...]}``)."""
    gt = read_json(gt_path, "ground-truth")
    dt = read_json(dt_path, "results")
    if isinstance(dt, dict) and isinstance(dt.get("annotations"), list):
        dt = dt["annotations"]
    return flat_from_coco(gt, dt, where_gt=str(gt_path), where_dt=str(dt_path))
