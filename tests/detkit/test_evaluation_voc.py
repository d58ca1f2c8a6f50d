"""VOC AP on hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from detkit.evaluation import evaluate_detections, evaluate_voc_flat, flat_from_lists, voc_ap


def one_image(gt_boxes, gt_classes, dt_boxes, dt_scores, dt_classes, n_classes, difficult=None):
    return flat_from_lists(
        [np.array(gt_boxes, float)], [np.array(gt_classes)], [np.array(dt_boxes, float)],
        [np.array(dt_scores, float)], [np.array(dt_classes)], range(n_classes),
        gt_difficult=None if difficult is None else [np.array(difficult)],
    )


def test_hand_case_all_point_and_11_point():
    # class 0: A, B regular, C difficult. In score order: d1 on A (TP), d2 on A again (FP,
    # already used), d3 on C (difficult: ignored), d4 nowhere (FP), d5 on B (TP).
    # precision 1, 1/2, 1/3, 1/2 at recall 1/2, 1/2, 1/2, 1 -> all-point AP 0.75,
    # 11-point (6 x 1 + 5 x 0.5) / 11. Class 1: a detection but no ground truth -> -1, not in
    # the mean. Class 2: ground truth, no detection -> 0.
    data = one_image(
        [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [80, 80, 90, 90]],
        [0, 0, 0, 2],
        [[0, 0, 10, 10], [0, 0, 10, 9], [40, 40, 50, 50], [60, 60, 70, 70], [20, 20, 30, 30], [1, 1, 5, 5]],
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
        [0, 0, 0, 0, 0, 1],
        3,
        difficult=[False, False, True, False],
    )
    res = evaluate_voc_flat(data)
    assert res.per_class_ap[0] == pytest.approx(0.75)
    assert res.per_class_ap[1] == -1.0
    assert res.per_class_ap[2] == 0.0
    assert res.map == pytest.approx(0.375)
    res07 = evaluate_voc_flat(data, use_07_metric=True)
    assert res07.per_class_ap[0] == pytest.approx(8.5 / 11)


def test_best_box_taken_is_a_false_positive_unlike_coco():
    # d2's best box is A (already used by d1); VOC calls it FP even though B overlaps it > 0.5
    gt = [[0, 0, 10, 10], [1, 0, 11, 10]]
    dts = [[0, 0, 10, 10], [0.2, 0, 10.2, 10]]
    data = one_image(gt, [0, 0], dts, [0.9, 0.8], [0, 0], 1)
    assert evaluate_voc_flat(data).per_class_ap[0] == pytest.approx(0.5)
    coco = evaluate_detections([np.array(gt, float)], [[0, 0]], [np.array(dts, float)], [[0.9, 0.8]], [[0, 0]], 1)
    assert coco["mAP50"] == pytest.approx(1.0)


def test_threshold_is_inclusive_and_configurable():
    # IoU exactly 0.5: [0,0,10,10] vs [0,0,10,5] -> 50/100
    data = one_image([[0, 0, 10, 10]], [0], [[0, 0, 10, 5]], [0.9], [0], 1)
    assert evaluate_voc_flat(data, iou_thr=0.5).per_class_ap[0] == pytest.approx(1.0)
    assert evaluate_voc_flat(data, iou_thr=0.51).per_class_ap[0] == 0.0


def test_detections_on_other_images_do_not_match():
    data = flat_from_lists(
        [np.array([[0, 0, 10, 10]], float), np.zeros((0, 4))], [[0], []],
        [np.zeros((0, 4)), np.array([[0, 0, 10, 10]], float)], [[], [0.9]], [[], [0]], [0],
    )
    assert evaluate_voc_flat(data).per_class_ap[0] == 0.0


def test_voc_ap_curves_by_hand():
    assert voc_ap(np.array([]), np.array([])) == 0.0
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx(1.0)
    # rising precision is flattened by the envelope: 0.5 * 0.6 + 0.5 * 0.6
    assert voc_ap(np.array([0.5, 1.0]), np.array([0.5, 0.6])) == pytest.approx(0.6)
    # 11-point: recall reaches 0.3 exactly (3/10) -> points 0, .1, .2, .3 get precision 1
    rec = np.array([0.1, 0.2, 0.3])
    assert voc_ap(rec, np.ones(3), use_07_metric=True) == pytest.approx(4 / 11)


def devkit_voc(data, thr, use_07):
    """The devkit's loop, written plainly (one class, one detection at a time)."""
    from detkit.boxes import iou_matrix, xywh_to_xyxy

    gt, dt = data.gt, data.dt
    g_xyxy, d_xyxy = xywh_to_xyxy(gt.xywh), xywh_to_xyxy(dt.xywh)
    out = {}
    for k, cid in enumerate(data.class_ids.tolist()):
        gi = np.flatnonzero(gt.category == k)
        ign = gt.difficult[gi] | gt.crowd[gi]
        npos = int((~ign).sum())
        di = np.flatnonzero(dt.category == k)
        di = di[np.argsort(-dt.score[di], kind="stable")]
        used = set()
        tp, fp = [], []
        for d in di:
            same = gi[gt.image[gi] == dt.image[d]]
            if len(same):
                ious = iou_matrix(d_xyxy[d : d + 1], g_xyxy[same])[0]
                j = int(np.argmax(ious))
                if ious[j] >= thr:
                    g = same[j]
                    if gt.difficult[g] or gt.crowd[g]:
                        continue
                    tp.append(g not in used)
                    fp.append(g in used)
                    used.add(g)
                    continue
            tp.append(False)
            fp.append(True)
        if npos == 0:
            out[cid] = -1.0
            continue
        ctp, cfp = np.cumsum(tp), np.cumsum(fp)
        out[cid] = voc_ap(ctp / npos, ctp / np.maximum(ctp + cfp, np.finfo(float).eps), use_07)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_sets_equal_the_devkit_loop(seed):
    from detkit.evaluation import flat_from_coco
    from detkit.evaluation.synthetic import synthetic_coco

    gt, res = synthetic_coco(25, 4, 40, seed=seed + 40, crowd_frac=0.1)
    for a in gt["annotations"][::5]:
        a["difficult"] = 1
    data = flat_from_coco(gt, res)
    for thr, use_07 in ((0.5, False), (0.7, True)):
        want = devkit_voc(data, thr, use_07)
        got = evaluate_voc_flat(data, thr, use_07).per_class_ap
        assert got.keys() == want.keys()
        np.testing.assert_allclose(list(got.values()), list(want.values()), atol=1e-12)
