"""Precision/recall accumulation with COCO's 101-point interpolation (pycocotools' ``accumulate``).

Detections come sorted the way pycocotools sorts them (class, score high first, image, rank).
Only matched detections carry per-configuration flags (configuration = IoU threshold x area
range); all others are summarised by running counts per area range. Output: interpolated
precision at each recall threshold and the final recall, per class. The loop runs once per
class; everything inside is vectorised over configurations and detections and performs the same
integer counts and floating-point operations as pycocotools, so the numbers are identical.
"""

from __future__ import annotations

import numpy as np

__all__ = ["class_bounds", "accumulate_matched"]

_EPS = np.spacing(1)


def class_bounds(cat_sorted: np.ndarray, n_classes: int) -> np.ndarray:
    """Start offsets of each class in a class-sorted array (``n_classes + 1`` entries)."""
    return np.searchsorted(cat_sorted, np.arange(n_classes + 1))


def _interpolate(rc: np.ndarray, env: np.ndarray, rec_thrs: np.ndarray) -> np.ndarray:
    """``env[searchsorted(rc[:, c], rec_thrs, 'left'), c]`` (0 past the end) for every column.

    Done at once by counting, per threshold, the rows whose recall is below it: a histogram of
    where each recall falls among the thresholds, summed up. Returns ``(columns, R)``.
    """
    nd, nr = rc.shape
    n_rec = len(rec_thrs)
    where = np.searchsorted(rec_thrs, rc.ravel(), side="right").reshape(nd, nr)
    hist = np.bincount(
        (where + np.arange(nr) * (n_rec + 1)).ravel(), minlength=nr * (n_rec + 1)
    ).reshape(nr, n_rec + 1)
    pi = np.cumsum(hist, axis=1)[:, :n_rec]  # (nr, R)
    q = np.take_along_axis(env, np.minimum(pi, nd - 1).T, axis=0)  # (R, nr)
    return np.where(pi < nd, q.T, 0.0)


def accumulate_matched(
    bounds: np.ndarray,
    keep: np.ndarray | None,
    out_area: np.ndarray,
    rows: np.ndarray,
    dtm: np.ndarray,
    on_ignored: np.ndarray,
    cfg_area: np.ndarray,
    npig: np.ndarray,
    rec_thrs: np.ndarray,
    with_precision: bool = True,
):
    """pycocotools' accumulation computed on the matched detections only.

    Detections arrive in accumulation order (class segments given by ``bounds``); ``keep``
    selects the ones inside a ``max_dets`` cut (None: all). ``out_area`` ``(n, A)``: detection
    outside each area range. ``rows`` (sorted) are the detections matched under some config;
    ``dtm`` / ``on_ignored`` ``(len(rows), C)``: matched to a counted ground truth (id != 0) /
    matched to an ignored one. Every other detection is unmatched everywhere: a false positive
    unless outside the area range (then ignored), so its effect on the running counts is one
    count of non-ignored rows per area, and precision only changes on matched rows: the
    envelope and the recall lookups are exact on those rows alone. Same integers, same float
    operations as pycocotools; returns precision ``(C, R, K)`` (or None) and recall ``(C, K)``.
    """
    n, n_cfg = out_area.shape[0], len(cfg_area)
    n_cls, n_rec = len(bounds) - 1, len(rec_thrs)
    inside_all = ~out_area
    if keep is not None:
        sel = keep[rows]
        rows, dtm, on_ignored = rows[sel], dtm[sel], on_ignored[sel]
        inside_all &= keep[:, None]
    in_cum = np.zeros((n + 1, out_area.shape[1]), dtype=np.int64)  # kept rows inside the range
    np.cumsum(inside_all, axis=0, out=in_cum[1:])
    out_r = out_area[rows][:, cfg_area]
    ign = on_ignored | (~dtm & out_r)
    tps = dtm & ~ign
    # matched rows inside the range that are not false positives (a false positive is never
    # outside: outside and unmatched means ignored)
    inside_not_fp = ~out_r & ~(~dtm & ~ign)
    row_bounds = np.searchsorted(rows, bounds)
    precision = -np.ones((n_cfg, n_rec, n_cls)) if with_precision else None
    recall = -np.ones((n_cfg, n_cls))
    for k in range(n_cls):
        cfgs = np.flatnonzero(npig[:, k] > 0)
        if len(cfgs) == 0:
            continue
        a, b = int(row_bounds[k]), int(row_bounds[k + 1])
        if a == b:  # no matched detection in this class: nothing is ever a true positive
            recall[cfgs, k] = 0.0
            if with_precision:
                precision[cfgs, :, k] = 0.0
            continue
        pick = slice(None) if len(cfgs) == n_cfg else cfgs
        tp = np.cumsum(tps[a:b, pick], axis=0, dtype=np.int64)
        r = rows[a:b]
        start = int(bounds[k])
        # false positives up to each matched row: every kept row inside the area range so far
        # (unmatched ones are false positives) minus the matched inside rows that are not
        inside_before = (in_cum[r + 1] - in_cum[start])[:, cfg_area][:, pick]
        fp = inside_before - np.cumsum(inside_not_fp[a:b, pick], axis=0)
        rc = tp / npig[cfgs, k]
        recall[cfgs, k] = rc[-1]
        if with_precision:
            pr = tp / (fp + tp + _EPS)
            env = np.maximum.accumulate(pr[::-1], axis=0)[::-1]
            precision[cfgs, :, k] = _interpolate(rc, env, rec_thrs)
    return precision, recall
