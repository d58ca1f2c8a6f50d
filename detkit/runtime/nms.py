"""Class-wise non-maximum suppression for the runtime (used when ``detkit.boxes`` lacks one)."""

from __future__ import annotations

import numpy as np


def nms_classwise(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS done per class at once (boxes offset by class); returns kept indices, best first.

    ``boxes`` (K, 4) xyxy, ``scores`` (K,), ``class_ids`` (K,). Each step is one vectorised IoU of
    the best remaining box against all others; K is at most ``max_det``, so the loop is short.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    b = boxes.astype(np.float64)
    span = float(np.max(b[:, 2:]) - min(0.0, float(np.min(b[:, :2])))) + 1.0
    b = b + (class_ids.astype(np.float64) * span)[:, None]  # boxes of different classes never overlap
    area = np.maximum(0.0, b[:, 2] - b[:, 0]) * np.maximum(0.0, b[:, 3] - b[:, 1])
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(b[i, 0], b[rest, 0])
        yy1 = np.maximum(b[i, 1], b[rest, 1])
        xx2 = np.minimum(b[i, 2], b[rest, 2])
        yy2 = np.minimum(b[i, 3], b[rest, 3])
        inter = np.maximum(0.0, xx2 - xx1) * np.maximum(0.0, yy2 - yy1)
        union = area[i] + area[rest] - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)
