"""The one place the executor asks for mAP: :func:`detkit.evaluation.evaluate_detections`.

Until that function is importable, pycocotools (a dev dependency) computes the same COCO numbers;
nothing else in the executor knows which one ran.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)


def _detkit():
    try:
        from detkit.evaluation import evaluate_detections
    except ImportError:
        return None
    return evaluate_detections


def _pycocotools(gt_boxes, gt_classes, dt_boxes, dt_scores, dt_classes, num_classes) -> dict:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for i, (gb, gc, db, ds, dc) in enumerate(zip(gt_boxes, gt_classes, dt_boxes, dt_scores, dt_classes, strict=True)):
        images.append({"id": i + 1})
        for b, c in zip(np.asarray(gb).reshape(-1, 4), gc, strict=True):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                         "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h, "iscrowd": 0})
        for b, s, c in zip(np.asarray(db).reshape(-1, 4), ds, dc, strict=True):
            dets.append({"image_id": i + 1, "category_id": int(c) + 1, "score": float(s),
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c + 1} for c in range(num_classes)]}
        gt.createIndex()
        if not dets or not anns:
            return {"mAP50": 0.0, "mAP50_95": 0.0, "per_class": {}}
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # (T, R, K) area all, maxDets 100
    per_class = {}
    for k in range(num_classes):
        p = prec[:, :, k]
        if (p > -1).any():
            per_class[k] = {"mAP50": float(np.mean(p[0][p[0] > -1])), "mAP50_95": float(np.mean(p[p > -1]))}
    return {"mAP50": max(0.0, float(ev.stats[1])), "mAP50_95": max(0.0, float(ev.stats[0])), "per_class": per_class}


def evaluate(
    gt_boxes: Sequence[np.ndarray],
    gt_classes: Sequence[np.ndarray],
    dt_boxes: Sequence[np.ndarray],
    dt_scores: Sequence[np.ndarray],
    dt_classes: Sequence[np.ndarray],
    num_classes: int,
) -> dict:
    """COCO mAP@0.5 and mAP@[.5:.95] of per-image xyxy pixel boxes: ``{"mAP50", "mAP50_95", "per_class"}``."""
    fn = _detkit() or _pycocotools
    result = fn(list(gt_boxes), list(gt_classes), list(dt_boxes), list(dt_scores), list(dt_classes), num_classes)
    return {"mAP50": float(result["mAP50"]), "mAP50_95": float(result["mAP50_95"]),
            "per_class": result.get("per_class", {})}
