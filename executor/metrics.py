"""The one place the executor asks for mAP: :func:`detkit.evaluation.evaluate_detections`.

COCO numbers (pycocotools-exact). Undefined values (-1: no ground truth) are reported as 0 so
``result.yaml`` always carries numbers in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detkit.evaluation import evaluate_detections


def evaluate(
    gt_boxes: Sequence[np.ndarray],
    gt_classes: Sequence[np.ndarray],
    dt_boxes: Sequence[np.ndarray],
    dt_scores: Sequence[np.ndarray],
    dt_classes: Sequence[np.ndarray],
    num_classes: int,
) -> dict:
    """mAP@0.5 and mAP@[.5:.95] of per-image xyxy pixel boxes: ``{"mAP50", "mAP50_95", "per_class"}``.

    ``per_class``: ``{class_id: {"ap": AP@[.5:.95], "ap50": AP@0.5}}`` (-1 where a class has no
    ground truth).
    """
    result = evaluate_detections(list(gt_boxes), list(gt_classes), list(dt_boxes), list(dt_scores),
                                 list(dt_classes), num_classes)
    return {"mAP50": max(0.0, float(result["mAP50"])), "mAP50_95": max(0.0, float(result["mAP50_95"])),
            "per_class": result.get("per_class", {})}
