"""The one-call entry point trainers and converters use: per-image ``xyxy`` arrays in, a dict out."""

from __future__ import annotations

from collections.abc import Sequence

from detkit.evaluation.coco import evaluate_flat
from detkit.evaluation.data import flat_from_lists
from detkit.evaluation.voc import evaluate_voc_flat

__all__ = ["evaluate_detections"]


def evaluate_detections(
    gt_boxes_per_image: Sequence,
    gt_classes_per_image: Sequence,
    dt_boxes: Sequence,
    dt_scores: Sequence,
    dt_classes: Sequence,
    num_classes: int,
    *,
    gt_crowd: Sequence | None = None,
    gt_difficult: Sequence | None = None,
    voc: bool = False,
) -> dict:
    """COCO-evaluate detections given as per-image numpy arrays.

    Each argument is a list with one entry per image: ``(N, 4)`` ``xyxy`` pixel boxes, ``(N,)``
    class ids in ``[0, num_classes)``, ``(N,)`` scores. Returns::

        {"mAP50": float, "mAP50_95": float, "stats": [12 pycocotools numbers],
         "per_class": {class_id: {"ap": AP@[.5:.95], "ap50": AP@.5}},
         "voc_mAP50": float}            # only with voc=True (all-point, difficult ignored)

    Values are -1 where undefined (no ground truth at all, or for that class), as in pycocotools.
    Raises :class:`detkit.errors.BadInput` on ragged lists, bad shapes or out-of-range classes.
    """
    data = flat_from_lists(
        gt_boxes_per_image, gt_classes_per_image, dt_boxes, dt_scores, dt_classes,
        range(int(num_classes)), gt_crowd=gt_crowd, gt_difficult=gt_difficult,
    )
    res = evaluate_flat(data)
    ap, ap50 = res.per_class_ap, res.per_class_ap50
    out = {
        "mAP50": res.map50,
        "mAP50_95": res.map50_95,
        "stats": [float(s) for s in res.stats],
        "per_class": {c: {"ap": ap[c], "ap50": ap50[c]} for c in ap},
    }
    if voc:
        out["voc_mAP50"] = evaluate_voc_flat(data, 0.5).map
    return out
