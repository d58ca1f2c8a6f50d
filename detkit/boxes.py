"""Vectorised box helpers: format conversion, areas, IoU matrices and non-maximum suppression.

Boxes are ``float64`` arrays of shape ``(N, 4)``. ``xyxy`` means ``x1, y1, x2, y2`` in pixels
(continuous coordinates, no ``+1``); ``xywh`` is the COCO layout ``x, y, width, height``.

Public names other packages rely on (keep them): :func:`iou_matrix`, :func:`nms`,
:func:`batched_nms`. The evaluator also uses :func:`coco_pair_iou`, which reproduces the
arithmetic of pycocotools' ``bbIou`` bit for bit.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "as_boxes",
    "box_area",
    "xyxy_to_xywh",
    "xywh_to_xyxy",
    "iou_matrix",
    "coco_pair_iou",
    "nms",
    "batched_nms",
]

# Up to this many boxes NMS runs as a fixed-point iteration on the full IoU matrix (a handful of
# matrix passes); above it the classic one-vectorised-pass-per-kept-box loop keeps memory bounded.
_MATRIX_NMS_MAX = 3000
_MATRIX_NMS_PASSES = 24


def as_boxes(boxes, name: str = "boxes") -> np.ndarray:
    """Return ``boxes`` as a ``(N, 4)`` float64 array; raise ``ValueError`` on another shape."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {arr.shape}")
    return arr


def box_area(xyxy: np.ndarray) -> np.ndarray:
    """Area of each ``xyxy`` box (negative widths/heights count as zero)."""
    b = as_boxes(xyxy)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def xyxy_to_xywh(xyxy: np.ndarray) -> np.ndarray:
    """Convert ``x1, y1, x2, y2`` boxes to COCO ``x, y, w, h``."""
    b = as_boxes(xyxy)
    out = b.copy()
    out[:, 2:] = b[:, 2:] - b[:, :2]
    return out


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """Convert COCO ``x, y, w, h`` boxes to ``x1, y1, x2, y2``."""
    b = as_boxes(xywh)
    out = b.copy()
    out[:, 2:] = b[:, :2] + b[:, 2:]
    return out


def iou_matrix(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` against every box in ``b``: an ``(N, M)`` float64 array.

    Boxes without area give IoU 0 against everything (never NaN).
    """
    a = as_boxes(a_xyxy, "a_xyxy")
    b = as_boxes(b_xyxy, "b_xyxy")
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def coco_pair_iou(d_xywh: np.ndarray, g_xywh: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of paired ``xywh`` boxes (row ``i`` of ``d`` with row ``i`` of ``g``), COCO rules.

    Same operations in the same order as pycocotools' C ``bbIou``, so results are bit-identical:
    for a crowd ground truth the union is the detection's own area.
    """
    dx, dy, dw, dh = d_xywh[:, 0], d_xywh[:, 1], d_xywh[:, 2], d_xywh[:, 3]
    gx, gy, gw, gh = g_xywh[:, 0], g_xywh[:, 1], g_xywh[:, 2], g_xywh[:, 3]
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da = dw * dh
    union = np.where(crowd, da, da + gw * gh - inter)
    out = np.zeros(len(inter))
    np.divide(inter, union, out=out, where=(w > 0) & (h > 0))
    return out


def _nms_matrix(iou: np.ndarray, thr: float) -> np.ndarray | None:
    """Exact greedy NMS on boxes already sorted by score, as a fixed point.

    Box ``i`` is kept iff no kept box ``j < i`` overlaps it by more than ``thr``. Starting from
    "all kept", each pass fixes at least the next box of every suppression chain, so the loop runs
    (longest chain + 1) times — a few passes in practice, each one matrix product. Returns None
    when the chains are too long for this to pay (the caller then uses the plain loop).
    """
    n = len(iou)
    sup = np.triu(iou > thr, k=1).astype(np.float32)  # sup[j, i]: j (higher score) suppresses i
    keep = np.ones(n, dtype=bool)
    for _ in range(_MATRIX_NMS_PASSES):
        new = (keep.astype(np.float32) @ sup) == 0
        if np.array_equal(new, keep):
            return keep
        keep = new
    return None


def _nms_loop(boxes: np.ndarray, classes: np.ndarray | None, thr: float) -> np.ndarray:
    """Classic greedy NMS on score-sorted boxes: one vectorised pass per kept box."""
    n = len(boxes)
    alive = np.ones(n, dtype=bool)
    keep = np.zeros(n, dtype=bool)
    for i in range(n):
        if not alive[i]:
            continue
        keep[i] = True
        rest = np.flatnonzero(alive[i + 1 :]) + i + 1
        if len(rest) == 0:
            break
        iou = iou_matrix(boxes[i : i + 1], boxes[rest])[0]
        hit = iou > thr
        if classes is not None:
            hit &= classes[rest] == classes[i]
        alive[rest[hit]] = False
    return keep


def _nms(boxes, scores, classes, iou: float) -> np.ndarray:
    b = as_boxes(boxes)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != len(b):
        raise ValueError(f"{len(b)} boxes but {len(s)} scores")
    order = np.argsort(-s, kind="stable")
    b = b[order]
    c = None if classes is None else np.asarray(classes).reshape(-1)[order]
    if len(b) <= _MATRIX_NMS_MAX:
        m = iou_matrix(b, b)
        if c is not None:
            m = np.where(c[:, None] == c[None, :], m, 0.0)
        keep = _nms_matrix(m, iou)
        if keep is None:
            keep = _nms_loop(b, c, iou)
    else:
        keep = _nms_loop(b, c, iou)
    return order[keep]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression of ``xyxy`` boxes.

    Returns the indices of the kept boxes, highest score first. A box is dropped when a kept,
    higher-scoring box overlaps it with IoU strictly greater than ``iou`` (torchvision's rule);
    equal scores keep input order.
    """
    return _nms(boxes, scores, None, iou)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Per-class NMS: boxes of different ``classes`` never suppress each other.

    Returns kept indices, highest score first (across all classes).
    """
    cls = np.asarray(classes).reshape(-1)
    if len(cls) != len(np.asarray(scores).reshape(-1)):
        raise ValueError(f"{len(cls)} classes but {len(np.asarray(scores).reshape(-1))} scores")
    return _nms(boxes, scores, cls, iou)
