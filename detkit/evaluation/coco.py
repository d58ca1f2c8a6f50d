"""COCO bbox evaluation with the numbers of pycocotools' ``COCOeval``, vectorised.

Same rules as pycocotools: detections cut at ``max(max_dets)`` per (image, class) after a stable
sort on score; crowd ground truth is ignored and may absorb any number of detections (IoU over
the detection's area); ground truth outside an area range (by its ``area`` field) is ignored and so
are unmatched detections outside it (by ``w * h``); 101-point interpolated precision; the 12
summary numbers in pycocotools' order. See :mod:`detkit.evaluation.matching` for how the greedy
matching runs across all images at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detkit.evaluation.accumulate import accumulate_matched, class_bounds
from detkit.evaluation.data import FlatSet, ImageDT, ImageGT, flat_from_images
from detkit.evaluation.matching import candidate_pairs, greedy_match, sort_detections

__all__ = ["CocoParams", "CocoResult", "evaluate_flat", "evaluate_coco", "SUMMARY"]

# pycocotools' 12 summary numbers, in its order: (1 = AP / 0 = AR, IoU threshold or None for
# .50:.95, area range label, index into the sorted max_dets)
SUMMARY = (
    (1, None, "all", 2),
    (1, 0.5, "all", 2),
    (1, 0.75, "all", 2),
    (1, None, "small", 2),
    (1, None, "medium", 2),
    (1, None, "large", 2),
    (0, None, "all", 0),
    (0, None, "all", 1),
    (0, None, "all", 2),
    (0, None, "small", 2),
    (0, None, "medium", 2),
    (0, None, "large", 2),
)


def _linspace(lo: float, hi: float, step: float) -> np.ndarray:
    # pycocotools' construction (np.arange drifts above the true values)
    return np.linspace(lo, hi, int(np.round((hi - lo) / step)) + 1, endpoint=True)


@dataclass(frozen=True)
class CocoParams:
    """Evaluation settings; the defaults are pycocotools' bbox defaults."""

    iou_thrs: np.ndarray = field(default_factory=lambda: _linspace(0.5, 0.95, 0.05))
    rec_thrs: np.ndarray = field(default_factory=lambda: _linspace(0.0, 1.0, 0.01))
    max_dets: tuple[int, ...] = (1, 10, 100)
    area_rngs: tuple[tuple[float, float], ...] = ((0, 1e10), (0, 1024), (1024, 9216), (9216, 1e10))
    area_labels: tuple[str, ...] = ("all", "small", "medium", "large")


@dataclass
class CocoResult:
    """What :func:`evaluate_coco` returns.

    ``stats``: the 12 pycocotools summary numbers (-1 where undefined). ``precision`` is
    ``(T, R, K, A, M)`` and ``recall`` ``(T, K, A, M)`` like ``COCOeval.eval``; precision is only
    filled for the largest ``max_dets`` unless ``full_precision`` was asked (it is all that the
    summary reads).
    """

    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    class_ids: np.ndarray
    params: CocoParams
    class_names: dict = field(default_factory=dict)

    @property
    def map50_95(self) -> float:
        return float(self.stats[0])

    @property
    def map50(self) -> float:
        return float(self.stats[1])

    def _class_ap(self, t_index) -> dict[int, float]:
        p = self.precision[t_index, :, :, 0, -1]  # area "all", largest max_dets
        out = {}
        for k, cid in enumerate(self.class_ids.tolist()):
            v = p[..., k]
            v = v[v > -1]
            out[cid] = float(np.mean(v)) if v.size else -1.0
        return out

    @property
    def per_class_ap(self) -> dict[int, float]:
        """AP@[.50:.95] per class id (area all, 100 detections); -1 for a class without ground truth."""
        return self._class_ap(slice(None))

    @property
    def per_class_ap50(self) -> dict[int, float]:
        """AP@.50 per class id; -1 for a class without ground truth."""
        t = np.where(np.isclose(self.params.iou_thrs, 0.5))[0]
        return self._class_ap(t)

    def to_dict(self, per_class: bool = False) -> dict:
        """JSON-ready summary: ``stats`` (12 numbers), ``map50``, ``map50_95`` and optionally per class."""
        out = {"stats": [float(s) for s in self.stats], "map50": self.map50, "map50_95": self.map50_95}
        if per_class:
            ap, ap50 = self.per_class_ap, self.per_class_ap50
            out["per_class"] = {
                str(c): {"name": self.class_names.get(c, str(c)), "ap": ap[c], "ap50": ap50[c]}
                for c in self.class_ids.tolist()
            }
        return out


def _summarize(result: CocoResult) -> np.ndarray:
    """pycocotools' ``summarize`` (bbox), same indexing and the same ``np.mean`` calls."""
    p = result.params
    max_dets = sorted(p.max_dets)

    def one(ap: int, iou_thr=None, area="all", max_det=100):
        aind = [i for i, a in enumerate(p.area_labels) if a == area]
        mind = [i for i, m in enumerate(max_dets) if m == max_det]
        if ap == 1:
            s = result.precision
            if iou_thr is not None:
                s = s[np.where(iou_thr == p.iou_thrs)[0]]
            s = s[:, :, :, aind, mind]
        else:
            s = result.recall
            if iou_thr is not None:
                s = s[np.where(iou_thr == p.iou_thrs)[0]]
            s = s[:, :, aind, mind]
        sel = s[s > -1]
        return -1.0 if len(sel) == 0 else float(np.mean(sel))

    return np.array([one(ap, iou, area, max_dets[mi]) for ap, iou, area, mi in SUMMARY])


def evaluate_flat(data: FlatSet, params: CocoParams | None = None, full_precision: bool = False) -> CocoResult:
    """COCO-evaluate a :class:`FlatSet`; the engine behind :func:`evaluate_coco` and the CLI."""
    p = params or CocoParams()
    max_dets = sorted(p.max_dets)
    n_k = data.num_classes
    n_t, n_r, n_a, n_m = len(p.iou_thrs), len(p.rec_thrs), len(p.area_rngs), len(max_dets)
    gt, dt = data.gt, data.dt
    lo = np.array([r[0] for r in p.area_rngs], dtype=np.float64)[:, None]
    hi = np.array([r[1] for r in p.area_rngs], dtype=np.float64)[:, None]

    # detections: stable score order inside each (image, class), cut at the largest max_dets
    order, rank = sort_detections(dt.image * n_k + dt.category, dt.score, max_dets[-1])
    d_key = (dt.image * n_k + dt.category)[order]
    pair_dt, pair_gt, pair_iou = candidate_pairs(
        d_key, dt.xywh[order], gt.image * n_k + gt.category, gt.xywh, gt.crowd,
        min(float(np.min(p.iou_thrs)), 1 - 1e-10),
    )
    regular = ~gt.crowd[None, :] & ~((gt.area[None, :] < lo) | (gt.area[None, :] > hi))  # (A, G)
    m = greedy_match(pair_dt, pair_gt, pair_iou, d_key, p.iou_thrs, regular, gt.crowd)

    # accumulation order: class, score high first, then image and rank (pycocotools' mergesort
    # over the per-image lists); flags are written straight into that order
    acc = np.lexsort((rank, dt.image[order], -dt.score[order], dt.category[order]))
    slot = np.empty(len(acc), dtype=np.int64)
    slot[acc] = np.arange(len(acc))
    n_c = n_t * n_a
    cfg_area = np.tile(np.arange(n_a), n_t)
    # only matched detections need per-config flags: (matched rows, configs), rows in
    # accumulation order; everything unmatched is summarised by per-area counts
    ms = slot[m.dt]
    rows, ri = np.unique(ms, return_inverse=True)
    dtm = np.zeros((len(rows), n_c), dtype=bool)
    dtm[ri, m.config] = gt.ann_id[m.gt] != 0  # pycocotools stores the gt id: id 0 reads "unmatched"
    on_ign = np.zeros((len(rows), n_c), dtype=bool)
    on_ign[ri, m.config] = ~regular[cfg_area[m.config], m.gt]
    d_area = dt.area[order][acc]
    out_area = (d_area[:, None] < lo.T) | (d_area[:, None] > hi.T)  # (n, A)
    cat_sorted = dt.category[order][acc]
    bounds = class_bounds(cat_sorted, n_k)
    rank_sorted = rank[acc]
    npig = np.stack([np.bincount(gt.category[regular[a]], minlength=n_k) for a in range(n_a)])
    npig_c = npig[cfg_area]  # (C, K)

    precision = -np.ones((n_t, n_r, n_k, n_a, n_m))
    recall = -np.ones((n_t, n_k, n_a, n_m))
    for mi, md in enumerate(max_dets):
        keep = rank_sorted < md
        with_prec = mi == n_m - 1 or full_precision
        prec, rec = accumulate_matched(
            bounds, None if keep.all() else keep, out_area, rows, dtm, on_ign, cfg_area, npig_c,
            p.rec_thrs, with_prec,
        )
        if with_prec:
            precision[:, :, :, :, mi] = prec.reshape(n_t, n_a, n_r, n_k).transpose(0, 2, 3, 1)
        recall[:, :, :, mi] = rec.reshape(n_t, n_a, n_k).transpose(0, 2, 1)

    result = CocoResult(
        stats=np.zeros(12), precision=precision, recall=recall, class_ids=data.class_ids,
        params=p, class_names=dict(data.class_names),
    )
    result.stats = _summarize(result)
    return result


def evaluate_coco(
    gt: Sequence[ImageGT],
    dt: Sequence[ImageDT],
    class_ids: Sequence[int],
    params: CocoParams | None = None,
    full_precision: bool = False,
) -> CocoResult:
    """COCO bbox evaluation of per-image ground truth and detections (``xyxy`` pixel boxes).

    ``gt[i]`` and ``dt[i]`` describe the same image. ``class_ids`` are the classes evaluated (a
    class without ground truth is left out of the means, as in pycocotools). Raises
    :class:`detkit.errors.BadInput` on malformed arrays or unknown class ids.
    """
    return evaluate_flat(flat_from_images(gt, dt, class_ids), params, full_precision)
