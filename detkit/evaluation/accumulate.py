"""Precision/recall accumulation with COCO's 101-point interpolation (pycocotools' ``accumulate``).

Input: for every configuration (an IoU threshold under an area range) a row of TP and FP flags
over detections already sorted the way pycocotools sorts them (class, score high first, image,
rank). Output: interpolated precision at each recall threshold and the final recall, per class.
The loop runs once per class; everything inside is vectorised over configurations and detections
and performs the same floating-point operations as pycocotools, so the numbers are identical.
"""

from __future__ import annotations

import numpy as np

__all__ = ["class_bounds", "precision_recall", "final_recall"]

_EPS = np.spacing(1)


def class_bounds(cat_sorted: np.ndarray, n_classes: int) -> np.ndarray:
    """Start offsets of each class in a class-sorted array (``n_classes + 1`` entries)."""
    return np.searchsorted(cat_sorted, np.arange(n_classes + 1))


def precision_recall(
    bounds: np.ndarray, tps: np.ndarray, fps: np.ndarray, npig: np.ndarray, rec_thrs: np.ndarray
):
    """Interpolated precision ``(C, R, K)`` and final recall ``(C, K)``.

    ``bounds`` from :func:`class_bounds`; ``tps``/``fps`` are ``(C, n)`` booleans in accumulation
    order; ``npig`` ``(C, K)`` counts the non-ignored ground truth. Entries stay -1 where a class
    has no non-ignored ground truth, as in pycocotools.
    """
    n_cfg = tps.shape[0]
    n_cls = len(bounds) - 1
    n_rec = len(rec_thrs)
    precision = -np.ones((n_cfg, n_rec, n_cls))
    recall = -np.ones((n_cfg, n_cls))
    for k in range(n_cls):
        rows = np.flatnonzero(npig[:, k] > 0)
        if len(rows) == 0:
            continue
        s, e = int(bounds[k]), int(bounds[k + 1])
        nd = e - s
        if nd == 0:
            precision[rows, :, k] = 0.0
            recall[rows, k] = 0.0
            continue
        tp = np.cumsum(tps[rows, s:e], axis=1)
        fp = np.cumsum(fps[rows, s:e], axis=1)
        rc = tp / npig[rows, k][:, None]
        pr = tp / (fp + tp + _EPS)
        recall[rows, k] = rc[:, -1]
        env = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
        # searchsorted(rc_row, rec_thrs, 'left') for every row at once: count, per threshold,
        # the detections whose recall is below it (histogram of where each recall falls)
        nr = len(rows)
        where = np.searchsorted(rec_thrs, rc.ravel(), side="right").reshape(nr, nd)
        hist = np.bincount(
            (np.arange(nr)[:, None] * (n_rec + 1) + where).ravel(), minlength=nr * (n_rec + 1)
        ).reshape(nr, n_rec + 1)
        pi = np.cumsum(hist, axis=1)[:, :n_rec]
        q = np.take_along_axis(env, np.minimum(pi, nd - 1), axis=1)
        precision[rows, :, k] = np.where(pi < nd, q, 0.0)
    return precision, recall


def final_recall(bounds: np.ndarray, tps: np.ndarray, npig: np.ndarray) -> np.ndarray:
    """Recall after all detections, ``(C, K)``; -1 where there is no non-ignored ground truth."""
    n_cfg = tps.shape[0]
    csum = np.zeros((n_cfg, tps.shape[1] + 1), dtype=np.int64)
    np.cumsum(tps, axis=1, out=csum[:, 1:])
    tp = csum[:, bounds[1:]] - csum[:, bounds[:-1]]
    out = -np.ones(npig.shape)
    ok = npig > 0
    out[ok] = tp[ok] / npig[ok]
    return out
