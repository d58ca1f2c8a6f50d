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

    ``bounds`` from :func:`class_bounds`; ``tps``/``fps`` are ``(n, C)`` booleans, detections in
    accumulation order down the rows (this layout lets numpy run the cumulative sums across all
    configurations at once); ``npig`` ``(C, K)`` counts the non-ignored ground truth. Entries stay
    -1 where a class has no non-ignored ground truth, as in pycocotools.
    """
    n_cfg = tps.shape[1]
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
        pick = slice(None) if len(rows) == n_cfg else rows
        tp = np.cumsum(tps[s:e, pick], axis=0, dtype=np.int32)
        fp = np.cumsum(fps[s:e, pick], axis=0, dtype=np.int32)
        rc = tp / npig[rows, k]
        pr = tp / (fp + tp + _EPS)
        recall[rows, k] = rc[-1]
        env = np.maximum.accumulate(pr[::-1], axis=0)[::-1]
        # searchsorted(rc[:, c], rec_thrs, 'left') for every column at once: count, per
        # threshold, the detections whose recall is below it (histogram of where each one falls)
        nr = len(rows)
        where = np.searchsorted(rec_thrs, rc.ravel(), side="right").reshape(nd, nr)
        hist = np.bincount(
            (where + np.arange(nr) * (n_rec + 1)).ravel(), minlength=nr * (n_rec + 1)
        ).reshape(nr, n_rec + 1)
        pi = np.cumsum(hist, axis=1)[:, :n_rec]  # (nr, R)
        q = np.take_along_axis(env, np.minimum(pi, nd - 1).T, axis=0)  # (R, nr)
        precision[rows, :, k] = np.where(pi < nd, q.T, 0.0)
    return precision, recall


def final_recall(bounds: np.ndarray, tps: np.ndarray, npig: np.ndarray) -> np.ndarray:
    """Recall after all detections, ``(C, K)`` from ``(n, C)`` flags; -1 without ground truth."""
    n, n_cfg = tps.shape
    out = -np.ones(npig.shape)
    if n == 0:
        out[npig > 0] = 0.0
        return out
    # per-class sums with one reduceat (a full-length cumsum is several times slower: cache);
    # reduceat returns a row instead of 0 for an empty class, so those are zeroed after
    starts = np.minimum(bounds[:-1], n - 1)
    tp = np.add.reduceat(tps, starts, axis=0, dtype=np.int64).T
    tp[:, bounds[:-1] == bounds[1:]] = 0
    ok = npig > 0
    out[ok] = tp[ok] / npig[ok]
    return out
