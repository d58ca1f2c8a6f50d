"""PASCAL VOC average precision: all-point (VOC2010+, the default) or 11-point (VOC2007).

VOC rules, as in the devkit: per class, detections in score order (stable); each one looks at
the ground truth of its image and class with the highest IoU (first box on ties), used or not.
IoU >= threshold on a *difficult* box: ignored. On a free box: true positive, the box is used.
On a used box, or below the threshold: false positive. Difficult boxes do not count as
positives. Boxes are continuous pixel coordinates (no devkit ``+1``). A class without
(non-difficult) ground truth has AP -1 and stays out of the mean.

Everything is vectorised: the best box of a detection does not depend on earlier matches, so
"first detection in score order on each box wins" is one ``np.unique`` over the whole set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detkit.evaluation.accumulate import class_bounds
from detkit.evaluation.data import FlatSet
from detkit.evaluation.matching import candidate_pairs

__all__ = ["voc_ap", "VocResult", "evaluate_voc_flat"]


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """AP from a recall/precision curve (detections in score order).

    All-point: area under the monotone precision envelope. 11-point: mean over recall
    0, 0.1, ..., 1 of the highest precision at recall >= that point (0 if none).
    """
    rec = np.asarray(recall, dtype=np.float64)
    prec = np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        if len(rec) == 0:
            return 0.0
        # highest precision at recall >= t: suffix max of precision at the first such point; the
        # 1e-12 keeps recall 0.3 (= 3/10) at or above the point 0.3 (= 0.30000000000000004)
        env = np.maximum.accumulate(prec[::-1])[::-1]
        i = np.searchsorted(rec, np.linspace(0.0, 1.0, 11) - 1e-12, side="left")
        vals = np.where(i < len(rec), env[np.minimum(i, len(rec) - 1)], 0.0)
        return float(np.sum(vals) / 11.0)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@dataclass
class VocResult:
    """``map`` over classes with ground truth; ``per_class_ap`` by class id (-1: no ground truth)."""

    map: float
    per_class_ap: dict[int, float]
    iou_thr: float
    use_07_metric: bool

    def to_dict(self) -> dict:
        return {
            "map": self.map, "iou_thr": self.iou_thr, "use_07_metric": self.use_07_metric,
            "per_class": {str(k): v for k, v in self.per_class_ap.items()},
        }


def evaluate_voc_flat(data: FlatSet, iou_thr: float = 0.5, use_07_metric: bool = False) -> VocResult:
    """VOC AP of every class of a :class:`FlatSet` (difficult and crowd boxes are ignored)."""
    gt, dt = data.gt, data.dt
    n_k = data.num_classes
    ignored = gt.difficult | gt.crowd
    key_d = dt.image * max(n_k, 1) + dt.category
    key_g = gt.image * max(n_k, 1) + gt.category
    # class, then score high first, then input order (stable)
    order = np.lexsort((-dt.score, dt.category))
    # plain IoU for every pair of the same image and class (candidate_pairs wants sorted groups)
    by_group = np.argsort(key_d[order], kind="stable")
    pos = order[by_group]
    no_crowd = np.zeros(len(gt), dtype=bool)
    # pairs below the threshold can be dropped up front: when a detection's best box is below
    # it, the detection misses whichever box that is; when it is above, it is among the kept
    pd, pg, piou = candidate_pairs(key_d[pos], dt.xywh[pos], key_g, gt.xywh, no_crowd, float(iou_thr))
    best = np.full(len(dt), -1, dtype=np.int64)
    best_iou = np.zeros(len(dt))
    if len(pd):
        # per detection: highest IoU, first box on ties -> sort by (det, iou, -box), take the last
        srt = np.lexsort((-pg, piou, pd))
        last = np.concatenate((pd[srt][1:] != pd[srt][:-1], [True]))
        det = pos[pd[srt][last]]
        best[det] = pg[srt][last]
        best_iou[det] = piou[srt][last]
    b = best[order]
    hit = (b >= 0) & (best_iou[order] >= iou_thr)
    ign = np.zeros(len(order), dtype=bool)
    ign[hit] = ignored[b[hit]]
    cand = np.flatnonzero(hit & ~ign)
    tp = np.zeros(len(order), dtype=bool)
    if len(cand):
        _, first = np.unique(b[cand], return_index=True)  # first detection in score order per box
        tp[cand[first]] = True
    fp = ~tp & ~ign
    npos = np.bincount(gt.category[~ignored], minlength=n_k)
    bounds = class_bounds(dt.category[order], n_k)
    per_class = {}
    for k, cid in enumerate(data.class_ids.tolist()):
        if npos[k] == 0:
            per_class[cid] = -1.0
            continue
        s, e = bounds[k], bounds[k + 1]
        keep = tp[s:e] | fp[s:e]
        ctp = np.cumsum(tp[s:e][keep])
        cfp = np.cumsum(fp[s:e][keep])
        rec = ctp / npos[k]
        prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        per_class[cid] = voc_ap(rec, prec, use_07_metric)
    valid = [v for v in per_class.values() if v >= 0]
    return VocResult(
        map=float(np.mean(valid)) if valid else -1.0, per_class_ap=per_class,
        iou_thr=float(iou_thr), use_07_metric=use_07_metric,
    )
