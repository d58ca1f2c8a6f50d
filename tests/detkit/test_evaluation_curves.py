"""PR curves, the F1 sweep and the confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest

from detkit.evaluation import (
    confusion_matrix,
    evaluate_flat,
    f1_sweep,
    flat_from_coco,
    flat_from_lists,
    pr_curves,
)
from detkit.evaluation.synthetic import synthetic_coco


def test_pr_curve_area_equals_coco_per_class_ap():
    gt, res = synthetic_coco(40, 6, 50, seed=21, crowd_frac=0.1)
    data = flat_from_coco(gt, res)
    coco = evaluate_flat(data)
    for thr, want in ((0.5, coco.per_class_ap50),):
        curves = pr_curves(data, thr)
        assert set(curves) == set(want)
        for cid, c in curves.items():
            assert c.ap == pytest.approx(want[cid], abs=1e-12)
            assert np.all(np.diff(c.recall) >= 0)
            assert np.all(np.diff(c.scores) <= 0)
    # AP@.75 from the curve equals the COCO precision array at that threshold
    t75 = int(np.where(np.isclose(coco.params.iou_thrs, 0.75))[0][0])
    curves = pr_curves(data, 0.75)
    for k, cid in enumerate(coco.class_ids.tolist()):
        p = coco.precision[t75, :, k, 0, -1]
        want = float(np.mean(p)) if (p > -1).any() else -1.0
        assert curves[cid].ap == pytest.approx(want, abs=1e-12)


def test_f1_sweep_hand_case():
    # two boxes; detections .9 (hit), .6 (miss), .4 (hit)
    data = flat_from_lists(
        [np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)], [[0, 0]],
        [np.array([[0, 0, 10, 10], [50, 0, 60, 10], [20, 0, 30, 10]], float)], [[0.9, 0.6, 0.4]], [[0, 0, 0]],
        [0],
    )
    sw = f1_sweep(data, 0.5, conf_thrs=[0.3, 0.5, 0.8, 0.95])
    np.testing.assert_allclose(sw.precision_all, [2 / 3, 1 / 2, 1.0, 0.0])
    np.testing.assert_allclose(sw.recall_all, [1.0, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(sw.f1_all, [0.8, 0.5, 2 / 3, 0.0])
    assert sw.best_conf == 0.3 and sw.best_f1 == pytest.approx(0.8)
    np.testing.assert_allclose(sw.f1[0], sw.f1_all)


def test_confusion_matrix_hand_case():
    # A (class 0) found as class 1; B (class 1) found right; C (class 0) missed; a class-0 false
    # alarm; a low-score detection on C that the confidence gate drops
    data = flat_from_lists(
        [np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], float)], [[0, 1, 0]],
        [np.array([[0, 0, 10, 10], [20, 0, 30, 10], [70, 0, 80, 10], [40, 0, 50, 10]], float)],
        [[0.9, 0.8, 0.7, 0.1]], [[1, 1, 0, 0]], [0, 1],
    )
    cm = confusion_matrix(data, iou_thr=0.5, conf_thr=0.25)
    want = np.array([
        [0, 1, 1],  # true 0: once called 1, once missed
        [0, 1, 0],  # true 1: right
        [1, 0, 0],  # background: a class-0 false alarm
    ])
    np.testing.assert_array_equal(cm, want)
    assert confusion_matrix(data, iou_thr=0.5, conf_thr=0.0)[0, 0] == 1  # the .1 detection now finds C
