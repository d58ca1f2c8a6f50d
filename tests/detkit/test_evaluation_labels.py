"""Per-box TP / FP / FN / MTP / IGNORED labels on hand cases, at one and several IoUs."""

from __future__ import annotations

import numpy as np
import pytest

from detkit.evaluation import FN, FP, IGNORED, MTP, TP, label_boxes, label_boxes_multi

GT = [
    np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], float),  # g2 is ignored (crowd)
    np.zeros((0, 4)),
    np.array([[0, 0, 10, 10]], float),
]
GT_CLS = [np.array([0, 0, 1]), np.zeros(0, int), np.array([0])]
GT_IGN = [np.array([False, False, True]), np.zeros(0, bool), np.array([False])]
DT = [
    np.array([
        [0, 0, 10, 10],   # p0 cls0 .9 -> g0
        [20, 0, 30, 13],  # p1 cls0 .8 -> g1 at IoU 100/130 = .77
        [0, 0, 10, 10],   # p2 cls0 .7 duplicate of g0 -> FP
        [40, 0, 50, 10],  # p3 cls1 .6 on the ignored box -> IGNORED
        [60, 0, 70, 10],  # p4 cls0 .1 below the confidence -> IGNORED
        [0, 0, 10, 10],   # p5 cls1 .95 right place, wrong class -> FP
    ], float),
    np.array([[0, 0, 5, 5]], float),
    np.zeros((0, 4)),
]
DT_SC = [np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.95]), np.array([0.5]), np.zeros(0)]
DT_CLS = [np.array([0, 0, 0, 1, 0, 1]), np.array([0]), np.zeros(0, int)]


def run(**kw):
    return label_boxes_multi(GT, GT_CLS, DT, DT_SC, DT_CLS, conf_thr=0.3, gt_ignore=GT_IGN, **kw)


def test_labels_and_links_at_two_ious():
    out = run(iou_thrs=(0.5, 0.8))
    a, b = out[0.5], out[0.8]
    assert a[0].gt_labels.tolist() == [MTP, MTP, IGNORED]
    assert a[0].gt_match.tolist() == [0, 1, 3]
    assert a[0].dt_labels.tolist() == [TP, TP, FP, IGNORED, IGNORED, FP]
    assert a[0].dt_match.tolist() == [0, 1, -1, 2, -1, -1]
    # at 0.8 p1 no longer reaches g1: g1 is missed, p1 is a false alarm; the rest is the same
    assert b[0].gt_labels.tolist() == [MTP, FN, IGNORED]
    assert b[0].gt_match.tolist() == [0, -1, 3]
    assert b[0].dt_labels.tolist() == [TP, FP, FP, IGNORED, IGNORED, FP]
    assert b[0].dt_match.tolist() == [0, -1, -1, 2, -1, -1]
    for labels in (a, b):
        assert labels[1].gt_labels.tolist() == [] and labels[1].dt_labels.tolist() == [FP]
        assert labels[2].gt_labels.tolist() == [FN] and labels[2].dt_labels.tolist() == []


def test_single_iou_and_confidence_gate():
    one = label_boxes(GT, GT_CLS, DT, DT_SC, DT_CLS, iou_thr=0.5, conf_thr=0.85, gt_ignore=GT_IGN)
    # only p0 (.9) and p5 (.95) are considered: g1 is now missed
    assert one[0].gt_labels.tolist() == [MTP, FN, IGNORED]
    assert one[0].dt_labels.tolist() == [TP, IGNORED, IGNORED, IGNORED, IGNORED, FP]
    assert one[1].dt_labels.tolist() == [IGNORED]


def test_tied_scores_first_prediction_wins_and_best_iou_is_taken():
    gt = [np.array([[0, 0, 10, 10], [12, 0, 22, 10]], float)]
    # q0 overlaps both boxes, g1 better; q1 (same score, later in input) overlaps only g1:
    # q0 goes first and takes g1, so q1 is left with nothing and g0 is missed
    dt = [np.array([[9, 0, 21, 10], [12, 0, 22, 10]], float)]
    out = label_boxes(gt, [np.array([0, 0])], dt, [np.array([0.5, 0.5])], [np.array([0, 0])], iou_thr=0.04)
    assert out[0].dt_match.tolist() == [1, -1]
    assert out[0].dt_labels.tolist() == [TP, FP]
    assert out[0].gt_labels.tolist() == [FN, MTP]
    # swap the input order: now the exact copy goes first and q0 falls back to g0
    out = label_boxes(gt, [np.array([0, 0])], [dt[0][::-1]], [np.array([0.5, 0.5])], [np.array([0, 0])], iou_thr=0.04)
    assert out[0].dt_match.tolist() == [1, 0]
    assert out[0].gt_labels.tolist() == [MTP, MTP]


def test_true_positives_agree_with_pycocotools_matching():
    pytest.importorskip("pycocotools")
    from detkit.evaluation import flat_from_coco
    from detkit.evaluation.labels import label_flat
    from detkit.evaluation.reference import run_reference
    from detkit.evaluation.synthetic import synthetic_coco

    gt, res = synthetic_coco(20, 4, 60, seed=51, crowd_frac=0.2)  # < 100 per (image, class)
    ev = run_reference(gt, res)
    data = flat_from_coco(gt, res)
    thrs = ev.params.iouThrs
    flats = label_flat(data, thrs, conf_thr=0.0)
    for t, (gl, dl, gm, dm) in enumerate(flats):
        want_tp = sum(
            int(np.sum((e["dtMatches"][t] > 0) & ~e["dtIgnore"][t].astype(bool)))
            for e in ev.evalImgs if e is not None and e["aRng"] == ev.params.areaRng[0]
        )
        assert int(np.sum(dl == TP)) == want_tp
        assert int(np.sum(gl == MTP)) == want_tp
        # links are mutual
        tp_idx = np.flatnonzero(dl == TP)
        assert np.all(gm[dm[tp_idx]] == tp_idx)
