"""COCO evaluation against pycocotools itself, on many seeded random sets and edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from detkit.errors import BadInput
from detkit.evaluation import (
    ImageDT,
    ImageGT,
    evaluate_coco,
    evaluate_detections,
    evaluate_flat,
    flat_from_coco,
)
from detkit.evaluation.reference import class_ap as ref_class_ap
from detkit.evaluation.reference import run_reference
from detkit.evaluation.synthetic import synthetic_coco

pytest.importorskip("pycocotools")


def reference(gt: dict, results: list):
    return run_reference(gt, results, "pycocotools")


def assert_same(gt, results, full=False):
    ev = reference(gt, results)
    ours = evaluate_flat(flat_from_coco(gt, results), full_precision=full)
    np.testing.assert_allclose(ours.stats, ev.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(list(ours.per_class_ap.values()), ref_class_ap(ev), rtol=0, atol=1e-9)
    t50 = np.where(np.isclose(ev.params.iouThrs, 0.5))[0]
    np.testing.assert_allclose(list(ours.per_class_ap50.values()), ref_class_ap(ev, t50), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours.recall, ev.eval["recall"])
    if full:
        np.testing.assert_array_equal(ours.precision, ev.eval["precision"])
    else:
        np.testing.assert_array_equal(ours.precision[..., -1], ev.eval["precision"][..., -1])
    return ours, ev


@pytest.mark.parametrize("seed", range(24))
def test_random_sets_equal_pycocotools(seed):
    rng = np.random.default_rng(1000 + seed)
    gt, results = synthetic_coco(
        n_images=int(rng.integers(5, 40)),
        n_classes=int(rng.integers(1, 12)),
        max_dets=int(rng.integers(1, 80)),
        seed=seed,
        max_gt=int(rng.integers(1, 15)),
        crowd_frac=float(rng.choice([0.0, 0.05, 0.3])),
        score_decimals=int(rng.choice([1, 2, 6])),
        heavy_class_frac=float(rng.choice([0.0, 0.2])),
    )
    if not results:  # pycocotools' loadRes cannot read an empty list
        pytest.skip("empty results")
    assert_same(gt, results, full=seed % 4 == 0)


def test_more_than_100_detections_in_one_class_and_image():
    gt, results = synthetic_coco(6, 3, 60, seed=7, heavy_class_frac=1.0)
    per = {}
    for r in results:
        per[(r["image_id"], r["category_id"])] = per.get((r["image_id"], r["category_id"]), 0) + 1
    assert max(per.values()) > 100
    assert_same(gt, results, full=True)


def test_all_scores_tied_keep_input_order():
    gt, results = synthetic_coco(20, 4, 30, seed=11)
    for r in results:
        r["score"] = 0.5
    assert_same(gt, results, full=True)


def test_crowd_heavy_and_area_field():
    gt, results = synthetic_coco(25, 5, 40, seed=12, crowd_frac=0.5)
    for a in gt["annotations"][::3]:
        a["area"] = a["area"] * 3.7  # area ranges follow the field, not the box
    assert_same(gt, results)


def test_tiny_and_huge_boxes():
    gt, results = synthetic_coco(20, 3, 30, seed=13)
    rng = np.random.default_rng(0)
    for a in gt["annotations"]:
        s = float(rng.choice([0.5, 3.0, 5000.0]))
        a["bbox"][2] *= s
        a["bbox"][3] *= s
        a["area"] = a["bbox"][2] * a["bbox"][3]
    for r in results[::2]:
        s = float(rng.choice([0.5, 3.0, 5000.0]))
        r["bbox"][2] *= s
        r["bbox"][3] *= s
    assert_same(gt, results)


def test_annotation_id_zero_quirk():
    gt, results = synthetic_coco(10, 2, 20, seed=14)
    gt["annotations"][0]["id"] = 0  # pycocotools reads a match to id 0 as "no match"
    assert_same(gt, results)


def test_classes_without_gt_or_detections_and_empty_images():
    gt, results = synthetic_coco(30, 6, 20, seed=15, empty_frac=0.5)
    gt["categories"].append({"id": 999, "name": "never"})
    keep = {c["id"] for c in gt["categories"][:2]}
    results = [r for r in results if r["category_id"] not in keep] or results
    ours, _ = assert_same(gt, results)
    assert ours.per_class_ap[999] == -1.0


def test_unknown_result_category_is_dropped_like_pycocotools():
    gt, results = synthetic_coco(10, 3, 20, seed=16)
    results.append({"image_id": gt["images"][0]["id"], "category_id": 12345, "bbox": [1, 2, 3, 4], "score": 0.9})
    assert_same(gt, results)


def test_no_results_at_all_gives_zeros():
    gt, _ = synthetic_coco(10, 3, 20, seed=17)
    res = evaluate_flat(flat_from_coco(gt, []))
    assert list(res.stats) == [0.0] * 12


def test_no_ground_truth_gives_minus_one():
    res = evaluate_coco([ImageGT(np.zeros((0, 4)), np.zeros(0))], [ImageDT([[0, 0, 5, 5]], [0.9], [0])], [0])
    assert list(res.stats) == [-1.0] * 12


def _xyxy(box):
    x, y, w, h = box
    return [x, y, x + w, y + h]


def test_in_memory_api_equals_coco_files():
    # boxes on a 1/4-pixel grid so xyxy <-> xywh round trips exactly
    rng = np.random.default_rng(3)
    gts, dts, gt_json, res_json = [], [], {"images": [], "annotations": [], "categories": []}, []
    gt_json["categories"] = [{"id": c} for c in range(4)]
    aid = 1
    for i in range(25):
        n, m = int(rng.integers(0, 8)), int(rng.integers(0, 15))
        g = np.round(rng.uniform(0, 300, (n, 4)) * 4) / 4
        g[:, 2:] = g[:, :2] + np.round(rng.uniform(2, 120, (n, 2)) * 4) / 4
        gc = rng.integers(0, 4, n)
        src = rng.integers(0, max(n, 1), m)
        d = np.round(rng.uniform(0, 300, (m, 4)) * 4) / 4
        d[:, 2:] = d[:, :2] + np.round(rng.uniform(2, 120, (m, 2)) * 4) / 4
        if n:
            close = rng.random(m) < 0.6
            d[close] = g[src[close]] + np.round(rng.normal(0, 3, (int(close.sum()), 4)) * 4) / 4
        dc = np.where(rng.random(m) < 0.8, gc[src] if n else 0, rng.integers(0, 4, m))
        sc = np.round(rng.random(m), 2)
        gts.append(ImageGT(g, gc))
        dts.append(ImageDT(d, sc, dc))
        gt_json["images"].append({"id": i})
        for b, c in zip(g, gc, strict=True):
            xywh = [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]
            gt_json["annotations"].append({"id": aid, "image_id": i, "category_id": int(c), "bbox": xywh,
                                           "area": xywh[2] * xywh[3], "iscrowd": 0})
            aid += 1
        for b, c, s in zip(d, dc, sc, strict=True):
            res_json.append({"image_id": i, "category_id": int(c), "score": float(s),
                             "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    ev = reference(gt_json, res_json)
    ours = evaluate_coco(gts, dts, range(4))
    np.testing.assert_allclose(ours.stats, ev.stats, rtol=0, atol=1e-9)
    quick = evaluate_detections(
        [g.boxes for g in gts], [g.classes for g in gts], [d.boxes for d in dts],
        [d.scores for d in dts], [d.classes for d in dts], num_classes=4, voc=True,
    )
    assert quick["mAP50"] == pytest.approx(ev.stats[1], abs=1e-12)
    assert quick["mAP50_95"] == pytest.approx(ev.stats[0], abs=1e-12)
    np.testing.assert_allclose([quick["per_class"][k]["ap"] for k in range(4)], ref_class_ap(ev), atol=1e-9)
    assert 0 <= quick["voc_mAP50"] <= 1


def test_bad_inputs_are_rejected():
    with pytest.raises(BadInput, match="class ids"):
        evaluate_detections([np.zeros((1, 4))], [[7]], [np.zeros((0, 4))], [[]], [[]], num_classes=3)
    with pytest.raises(BadInput, match="shape"):
        evaluate_detections([np.zeros((1, 3))], [[0]], [np.zeros((0, 4))], [[]], [[]], num_classes=3)
    with pytest.raises(BadInput, match="images"):
        evaluate_detections([np.zeros((1, 4))], [[0]], [], [], [], num_classes=3)
    with pytest.raises(BadInput, match="NaN"):
        evaluate_detections([np.zeros((0, 4))], [[]], [[[0, 0, 1, 1]]], [[np.nan]], [[0]], num_classes=3)


def test_pair_chunking_gives_the_same_numbers(monkeypatch):
    from detkit.evaluation import matching

    gt, results = synthetic_coco(15, 3, 60, seed=18, max_gt=20)
    monkeypatch.setattr(matching, "_PAIR_CHUNK", 7)
    assert_same(gt, results)


def test_ignore_field_is_not_read_like_pycocotools():
    # pycocotools overwrites a ground truth's "ignore" with "iscrowd": only crowd boxes are ignored
    gt, results = synthetic_coco(15, 3, 30, seed=19)
    for a in gt["annotations"][::2]:
        a["ignore"] = 1
    ours, ev = assert_same(gt, results)
    plain = evaluate_flat(flat_from_coco({**gt, "annotations": [
        {k: v for k, v in a.items() if k != "ignore"} for a in gt["annotations"]]}, results))
    np.testing.assert_array_equal(ours.stats, plain.stats)


def test_crowd_from_image_records():
    g = ImageGT(np.array([[0, 0, 100, 100], [200, 0, 210, 10]], float), np.array([0, 0]),
                iscrowd=np.array([True, False]))
    d = ImageDT(np.array([[10, 10, 20, 20], [30, 30, 40, 40], [200, 0, 210, 10]], float),
                np.array([0.9, 0.8, 0.7]), np.array([0, 0, 0]))
    # both detections inside the crowd region are ignored; the third finds the regular box
    res = evaluate_coco([g], [d], [0])
    assert res.map50 == pytest.approx(1.0)
    assert res.map50_95 == pytest.approx(1.0)


@pytest.mark.slow
def test_mid_size_set_equals_pycocotools():
    gt, results = synthetic_coco(400, 30, 100, seed=99, heavy_class_frac=0.02, crowd_frac=0.05)
    assert_same(gt, results, full=True)
