"""COCO's greedy detection-to-ground-truth matching, vectorised across images.

pycocotools matches one (image, class) group at a time: detections in score order, each taking
the best still-free ground truth with IoU >= t (non-ignored ground truth first; crowd boxes may
take any number of detections; equal IoU goes to the later ground truth). Groups never interact,
so all groups can advance together: round ``r`` matches the ``r``-th *candidate* detection of
every group at once (a detection with no ground truth above the lowest threshold is skipped; it
cannot change anything). Each round is a handful of numpy calls over (configs x candidate pairs),
so the Python loop runs at most ``max_dets`` times whatever the number of images and classes, and
every IoU threshold and every ignore variant (COCO's area ranges) is matched in the same pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detkit.boxes import coco_pair_iou

__all__ = ["runs_rank", "sort_detections", "candidate_pairs", "greedy_match", "Matches"]

# Pairs built at once when enumerating (detection, ground truth) pairs of the same group: bounds
# the temporary memory (~150 bytes a pair) and keeps the IoU arithmetic in cache.
_PAIR_CHUNK = 262_144


def runs_rank(keys: np.ndarray) -> np.ndarray:
    """Position of each element inside its run of equal consecutive ``keys``: 0, 1, 2, ..."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.arange(n, dtype=np.int64)
    start = np.ones(n, dtype=bool)
    start[1:] = keys[1:] != keys[:-1]
    return idx - np.maximum.accumulate(np.where(start, idx, 0))


def sort_detections(group: np.ndarray, score: np.ndarray, max_det: int | None = None):
    """Order detections by group, then score (high first), then input order; cut at ``max_det``.

    Same order as pycocotools' per-image ``np.argsort(-score, kind='mergesort')``. Returns
    ``(order, rank)``: indices into the input and the rank of each kept detection in its group.
    """
    order = np.lexsort((-score, group))
    rank = runs_rank(group[order])
    if max_det is not None:
        keep = rank < max_det
        order, rank = order[keep], rank[keep]
    return order, rank


def candidate_pairs(
    dt_group: np.ndarray,
    dt_xywh: np.ndarray,
    gt_group: np.ndarray,
    gt_xywh: np.ndarray,
    gt_crowd: np.ndarray,
    min_iou: float,
):
    """Every (detection, ground truth) pair of the same group with COCO IoU >= ``min_iou``.

    ``dt_group`` must be sorted. Returns ``(pair_dt, pair_gt, pair_iou)``: positions into the
    detection arrays, indices into the ground-truth arrays, and the IoU (pycocotools' arithmetic).
    """
    gorder = np.argsort(gt_group, kind="stable")
    gkeys = gt_group[gorder]
    lo = np.searchsorted(gkeys, dt_group, side="left")
    cnt = np.searchsorted(gkeys, dt_group, side="right") - lo
    cum = np.cumsum(cnt)
    total = int(cum[-1]) if len(cum) else 0
    edges = [0]
    if total > _PAIR_CHUNK:
        cuts = np.searchsorted(cum, np.arange(_PAIR_CHUNK, total, _PAIR_CHUNK), side="right")
        edges += [int(c) for c in np.unique(cuts) if 0 < c < len(cnt)]
    edges.append(len(cnt))
    out_d, out_g, out_i = [], [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        c = cnt[a:b]
        n = int(c.sum())
        if n == 0:
            continue
        pd = np.repeat(np.arange(a, b, dtype=np.int64), c)
        offs = np.arange(n, dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
        pg = gorder[np.repeat(lo[a:b], c) + offs]
        iou = coco_pair_iou(dt_xywh[pd], gt_xywh[pg], gt_crowd[pg])
        keep = iou >= min_iou
        out_d.append(pd[keep])
        out_g.append(pg[keep])
        out_i.append(iou[keep])
    if not out_d:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(out_d), np.concatenate(out_g), np.concatenate(out_i)


@dataclass
class Matches:
    """Sparse result of :func:`greedy_match`: config ``c`` matched detection ``d`` to ground truth ``g``.

    Config ``c`` is threshold ``c // A`` under ignore variant ``c % A``.
    """

    config: np.ndarray
    dt: np.ndarray
    gt: np.ndarray

    def dense(self, n_configs: int, n_dt: int) -> np.ndarray:
        """``(configs, detections)`` int64 array: matched ground-truth index, or -1."""
        out = np.full((n_configs, n_dt), -1, dtype=np.int64)
        out[self.config, self.dt] = self.gt
        return out


def greedy_match(
    pair_dt: np.ndarray,
    pair_gt: np.ndarray,
    pair_iou: np.ndarray,
    dt_group: np.ndarray,
    thresholds: np.ndarray,
    regular: np.ndarray,
    reusable: np.ndarray,
) -> Matches:
    """Run COCO's greedy matching for every threshold and ignore variant at once.

    ``pair_*`` come from :func:`candidate_pairs` (detections sorted by group then score);
    ``regular`` is ``(A, G)``: ground truth that counts (not ignored) under each ignore variant;
    ``reusable`` ``(G,)`` marks crowd ground truth, which may absorb any number of detections.
    A pair is eligible at threshold ``t`` when its IoU >= ``min(t, 1 - 1e-10)``; among eligible
    pairs a detection takes regular ground truth before ignored, then the highest IoU, then the
    latest ground truth in input order — pycocotools' scan, exactly.
    """
    thresholds = np.minimum(np.asarray(thresholds, dtype=np.float64), 1 - 1e-10)
    n_a, n_gt = regular.shape
    thr_c = np.repeat(thresholds, n_a)
    reg_c = regular[np.tile(np.arange(n_a), len(thresholds))]
    empty = Matches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    if len(pair_dt) == 0:
        return empty
    cand, inv = np.unique(pair_dt, return_inverse=True)
    pair_round = runs_rank(dt_group[cand])[inv]
    order = np.lexsort((pair_gt, pair_iou, pair_dt, pair_round))
    pd, pg, piou, pr = pair_dt[order], pair_gt[order], pair_iou[order], pair_round[order]
    bounds = np.concatenate(([0], np.flatnonzero(pr[1:] != pr[:-1]) + 1, [len(pr)]))
    taken = np.zeros((len(thr_c), n_gt), dtype=bool)
    out_c, out_d, out_g = [], [], []
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        rd, rg, ri = pd[s:e], pg[s:e], piou[s:e]
        n = e - s
        seg = np.flatnonzero(np.concatenate(([True], rd[1:] != rd[:-1])))
        ok = ri >= thr_c[:, None]
        if s > 0:  # nothing is taken before the first round
            ok &= reusable[rg] | ~taken[:, rg]
        # key = preference class (0 none, 1 ignored, 2 regular) then position, which already
        # orders pairs of one detection by (IoU, ground-truth index): the max is pycocotools' pick
        key = (ok * (1 + reg_c[:, rg])).astype(np.int64) * n + np.arange(n)
        best = np.maximum.reduceat(key, seg, axis=1)
        ci, si = np.nonzero(best >= n)
        gi = rg[best[ci, si] % n]
        taken[ci, gi] = True
        out_c.append(ci)
        out_d.append(rd[seg[si]])
        out_g.append(gi)
    return Matches(np.concatenate(out_c), np.concatenate(out_d), np.concatenate(out_g))


def match_flat(
    data,
    iou_thrs,
    *,
    class_agnostic: bool = False,
    max_det: int | None = None,
    min_score: float | None = None,
    ignored: np.ndarray | None = None,
    reusable: np.ndarray | None = None,
):
    """Greedy-match a :class:`~detkit.evaluation.data.FlatSet` at one or more IoU thresholds.

    Detections below ``min_score`` take no part; ``max_det`` cuts each group as COCO does.
    ``ignored`` ground truth (default: crowd) is matched only when nothing else is; ``reusable``
    ground truth (default: crowd) may take several detections. With ``class_agnostic`` a group
    is a whole image (for confusion matrices). Returns ``(order, rank, matches)``: the considered
    detections as indices into ``data.dt`` in (group, score) order, their rank in their group,
    and :class:`Matches` whose ``dt`` are positions in ``order`` (config = threshold index).
    """
    gt, dt = data.gt, data.dt
    n_k = max(data.num_classes, 1)
    gkey = gt.image if class_agnostic else gt.image * n_k + gt.category
    dkey = dt.image if class_agnostic else dt.image * n_k + dt.category
    sel = np.arange(len(dt)) if min_score is None else np.flatnonzero(dt.score >= min_score)
    sub, rank = sort_detections(dkey[sel], dt.score[sel], max_det)
    order = sel[sub]
    thrs = np.atleast_1d(np.asarray(iou_thrs, dtype=np.float64))
    ignored = gt.crowd if ignored is None else ignored
    reusable = gt.crowd if reusable is None else reusable
    pd, pg, piou = candidate_pairs(dkey[order], dt.xywh[order], gkey, gt.xywh, gt.crowd, min(float(thrs.min()), 1 - 1e-10))
    m = greedy_match(pd, pg, piou, dkey[order], thrs, ~ignored[None, :], reusable)
    return order, rank, m
