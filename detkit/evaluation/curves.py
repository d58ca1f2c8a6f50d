"""Operating-point tools: precision/recall curves, an F1 sweep over confidence, a confusion matrix.

All three reuse COCO's greedy matching (:mod:`detkit.evaluation.matching`) at a chosen IoU, so
a curve's area agrees with the COCO AP at that IoU. Crowd (and difficult) ground truth is ignored
throughout: detections on it count neither way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detkit.evaluation.accumulate import accumulate_matched, class_bounds
from detkit.evaluation.data import FlatSet
from detkit.evaluation.matching import match_flat

__all__ = ["PRCurve", "F1Sweep", "pr_curves", "f1_sweep", "confusion_matrix"]

_REC_THRS = np.linspace(0.0, 1.0, 101)


@dataclass
class PRCurve:
    """One class's curve: detections in score order with cumulative precision and recall.

    ``ap`` is COCO's 101-point interpolated AP at this IoU (-1 without ground truth);
    ``precision_101`` the interpolated precision at recall 0, 0.01, ..., 1.
    """

    class_id: int
    scores: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    num_gt: int
    ap: float
    precision_101: np.ndarray


@dataclass
class F1Sweep:
    """Precision, recall and F1 at each confidence threshold (``(K, N)`` per class, micro totals).

    ``best_conf`` / ``best_f1`` is the threshold with the highest overall F1 (the lowest such
    threshold on ties).
    """

    conf_thrs: np.ndarray
    class_ids: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    precision_all: np.ndarray
    recall_all: np.ndarray
    f1_all: np.ndarray
    best_conf: float
    best_f1: float


def _tp_fp(data: FlatSet, iou_thr: float, max_det: int | None):
    """Per considered detection (class-sorted, score high first): class index, score, TP, FP,
    whether it matched an ignored box, and the non-ignored ground-truth count per class."""
    ignored = data.gt.crowd | data.gt.difficult
    order, rank, m = match_flat(data, [iou_thr], max_det=max_det, ignored=ignored, reusable=data.gt.crowd)
    matched = np.zeros(len(order), dtype=bool)
    matched[m.dt] = True
    on_ignored = np.zeros(len(order), dtype=bool)
    on_ignored[m.dt] = ignored[m.gt]
    dt = data.dt
    acc = np.lexsort((rank, dt.image[order], -dt.score[order], dt.category[order]))
    tp = (matched & ~on_ignored)[acc]
    fp = (~matched)[acc]
    npos = np.bincount(data.gt.category[~ignored], minlength=data.num_classes)
    return dt.category[order][acc], dt.score[order][acc], tp, fp, on_ignored[acc], npos


def pr_curves(data: FlatSet, iou_thr: float = 0.5, max_det: int | None = 100) -> dict[int, PRCurve]:
    """Precision/recall curve of every class at ``iou_thr`` (COCO matching, area "all")."""
    cat, score, tp, fp, on_ign, npos = _tp_fp(data, iou_thr, max_det)
    bounds = class_bounds(cat, data.num_classes)
    rows = np.flatnonzero(tp | on_ign)
    interp, _ = accumulate_matched(
        bounds, None, np.zeros((len(cat), 1), dtype=bool), rows, tp[rows, None], on_ign[rows, None],
        np.zeros(1, dtype=np.int64), npos[None], _REC_THRS,
    )
    out = {}
    for k, cid in enumerate(data.class_ids.tolist()):
        s, e = bounds[k], bounds[k + 1]
        keep = tp[s:e] | fp[s:e]  # detections on ignored boxes change nothing: leave them out
        ctp = np.cumsum(tp[s:e][keep])
        cfp = np.cumsum(fp[s:e][keep])
        n = int(npos[k])
        prec = ctp / np.maximum(ctp + cfp, 1)
        rec = ctp / n if n else np.zeros(len(ctp))
        q = interp[0, :, k]
        out[cid] = PRCurve(
            class_id=cid, scores=score[s:e][keep], precision=prec, recall=rec, num_gt=n,
            ap=float(q.mean()) if n else -1.0, precision_101=q,
        )
    return out


def f1_sweep(
    data: FlatSet,
    iou_thr: float = 0.5,
    conf_thrs: Sequence[float] | None = None,
    max_det: int | None = None,
) -> F1Sweep:
    """P, R and F1 of the detections scoring at or above each confidence threshold.

    Greedy matching goes in score order, so the matches of the detections above a threshold are
    the same whether or not the lower ones exist: one matching serves the whole sweep. Precision
    with no detection is 0; recall of a class without ground truth is 0.
    """
    conf = np.asarray(np.linspace(0, 1, 101) if conf_thrs is None else conf_thrs, dtype=np.float64)
    conf = np.sort(conf)
    n_k, n_c = data.num_classes, len(conf)
    cat, score, tp, fp, _, npos = _tp_fp(data, iou_thr, max_det)
    # bin b = number of thresholds <= score: the detection counts at thresholds 0 .. b-1
    b = np.searchsorted(conf, score, side="right")
    idx = cat * (n_c + 1) + b

    def at_or_above(flags):
        h = np.bincount(idx, weights=flags, minlength=n_k * (n_c + 1)).reshape(n_k, n_c + 1)
        return np.cumsum(h[:, ::-1], axis=1)[:, ::-1][:, 1:]

    ctp, cfp = at_or_above(tp.astype(float)), at_or_above(fp.astype(float))
    prec, rec, f1 = _prf(ctp, cfp, npos[:, None].astype(float))
    p_all, r_all, f_all = _prf(ctp.sum(0), cfp.sum(0), float(npos.sum()))
    best = int(np.argmax(f_all)) if n_c else 0
    return F1Sweep(
        conf_thrs=conf, class_ids=data.class_ids, precision=prec, recall=rec, f1=f1,
        precision_all=p_all, recall_all=r_all, f1_all=f_all,
        best_conf=float(conf[best]) if n_c else 0.0, best_f1=float(f_all[best]) if n_c else 0.0,
    )


def _prf(tp, fp, npos):
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(npos > 0, tp / npos, 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return p, r, f


def confusion_matrix(data: FlatSet, iou_thr: float = 0.5, conf_thr: float = 0.25) -> np.ndarray:
    """``(K+1, K+1)`` counts: rows are the true class, columns the predicted class; index ``K`` is
    background (a missed box is ``[true, K]``, a false alarm ``[K, predicted]``).

    Class-agnostic greedy matching per image (highest score first, highest IoU >= ``iou_thr``)
    among detections scoring at least ``conf_thr``, so a box found with the wrong class lands
    off the diagonal. Detections on ignored ground truth count nowhere.
    """
    n_k = data.num_classes
    gt, dt = data.gt, data.dt
    ignored = gt.crowd | gt.difficult
    order, _, m = match_flat(
        data, [iou_thr], class_agnostic=True, min_score=conf_thr, ignored=ignored, reusable=ignored
    )
    cm = np.zeros((n_k + 1, n_k + 1), dtype=np.int64)
    regular = ~ignored[m.gt]
    d_cls = dt.category[order]
    np.add.at(cm, (gt.category[m.gt[regular]], d_cls[m.dt[regular]]), 1)
    gt_hit = np.zeros(len(gt), dtype=bool)
    gt_hit[m.gt] = True
    np.add.at(cm[:, n_k], gt.category[~gt_hit & ~ignored], 1)
    dt_hit = np.zeros(len(order), dtype=bool)
    dt_hit[m.dt] = True
    np.add.at(cm[n_k], d_cls[~dt_hit], 1)
    return cm
