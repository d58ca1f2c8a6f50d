"""Diagnosis through the hub: numbers equal detkit.evaluation on the same data, cache, labels, errors."""

from __future__ import annotations

import numpy as np
import pytest
from test_diagnosis_helpers import pred_zip, run_job, scenes, setup_project, upload

from detkit.evaluation import evaluate_detections, evaluate_voc_flat, flat_from_lists, label_boxes
from detkit.evaluation.labels import FN, FP, MTP, TP


@pytest.fixture
def pred_version(api, tmp_path):
    """A version imported from a zip with gt/ and pred/ (+ meta.yaml): both sides in one version."""
    setup_project(api)
    gt, pred = scenes(8, seed=1)
    return upload(api, pred_zip(tmp_path / "p.zip", gt, pred, model="tiny"), name="test")


def _lists(api, gt_version: int, pred_version: int):
    """Per-image arrays read back through the API (images by sha1, boxes in stored order)."""

    def assets(vid):
        rows = api.get(f"/api/v1/versions/{vid}/assets?limit=1000").get_json()["assets"]
        return {a["sha1"]: a for a in rows}

    ga, pa = assets(gt_version), assets(pred_version)
    common = sorted(set(ga) & set(pa))
    cls = {"cat": 0, "dog": 1}
    out = {k: [] for k in ("gb", "gc", "db", "ds", "dc")}
    for s in common:
        g = [b for b in ga[s]["boxes"] if b["kind"] == "gt"]
        d = [b for b in pa[s]["boxes"] if b["kind"] == "pred"]
        out["gb"].append(np.array([[b["x1"], b["y1"], b["x2"], b["y2"]] for b in g]).reshape(-1, 4))
        out["gc"].append(np.array([cls[b["class"]] for b in g], dtype=np.int64))
        out["db"].append(np.array([[b["x1"], b["y1"], b["x2"], b["y2"]] for b in d]).reshape(-1, 4))
        out["ds"].append(np.array([b["confidence"] for b in d], dtype=float))
        out["dc"].append(np.array([cls[b["class"]] for b in d], dtype=np.int64))
    return out


def _check_equal(api, res, gt_id, pred_id, iou=0.5, conf=0.25):
    L = _lists(api, gt_id, pred_id)
    ref = evaluate_detections(L["gb"], L["gc"], L["db"], L["ds"], L["dc"], 2, voc=True)
    assert res["coco_stats"] == pytest.approx(ref["stats"], abs=1e-12)
    assert res["mAP50"] == pytest.approx(ref["mAP50"], abs=1e-12)
    assert res["mAP50_95"] == pytest.approx(ref["mAP50_95"], abs=1e-12)
    assert res["voc_mAP50"] == pytest.approx(ref["voc_mAP50"], abs=1e-12)
    voc = evaluate_voc_flat(flat_from_lists(L["gb"], L["gc"], L["db"], L["ds"], L["dc"], [0, 1]), iou)
    assert res["voc_mAP"] == pytest.approx(voc.map, abs=1e-12)
    for name, k in (("cat", 0), ("dog", 1)):
        assert res["per_class"][name]["ap"] == pytest.approx(ref["per_class"][k]["ap"], abs=1e-6)
        assert res["per_class"][name]["ap50"] == pytest.approx(ref["per_class"][k]["ap50"], abs=1e-6)
    labels = label_boxes(L["gb"], L["gc"], L["db"], L["ds"], L["dc"], iou_thr=iou, conf_thr=conf)
    tp = sum(int((im.dt_labels == TP).sum()) for im in labels)
    fp = sum(int((im.dt_labels == FP).sum()) for im in labels)
    fn = sum(int((im.gt_labels == FN).sum()) for im in labels)
    mtp = sum(int((im.gt_labels == MTP).sum()) for im in labels)
    assert (res["tp"], res["fp"], res["fn"]) == (tp, fp, fn) and mtp == tp
    assert res["precision"] == pytest.approx(tp / (tp + fp), abs=1e-6)
    assert res["recall"] == pytest.approx(tp / (tp + fn), abs=1e-6)


def test_one_version_holding_both_equals_detkit(api, pred_version):
    vid = pred_version["id"]
    r = api.get(f"/api/v1/versions/{vid}/evaluation")
    assert r.status_code == 200, r.get_json()
    res = r.get_json()
    assert res["mode"] == "same" and res["images"] == 8 and res["cached"] is False
    assert res["pred_version"]["model"] == "tiny"
    assert len(res["coco_stats"]) == 12 and 0 < res["mAP50"] <= 1
    _check_equal(api, res, vid, vid)
    # curves and sweep have the expected shapes
    assert len(res["pr_curves"]["cat"]["precision"]) == 101 == len(res["recall_points"])
    assert len(res["f1_sweep"]["f1"]) == 101 and 0 <= res["f1_sweep"]["best_conf"] <= 1
    cm = np.array(res["confusion"]["matrix"])
    assert cm.shape == (3, 3) and res["confusion"]["classes"][-1] == "background"


def test_other_iou_and_conf_change_the_operating_point(api, pred_version):
    vid = pred_version["id"]
    res = api.get(f"/api/v1/versions/{vid}/evaluation?iou=0.75&conf=0.5").get_json()
    assert res["params"] == {"iou": 0.75, "conf": 0.5}
    _check_equal(api, res, vid, vid, iou=0.75, conf=0.5)
    base = api.get(f"/api/v1/versions/{vid}/evaluation").get_json()
    assert base["mAP50"] == res["mAP50"]  # COCO numbers do not depend on the operating point
    assert (base["tp"], base["fp"]) != (res["tp"], res["fp"])


def test_repeat_request_is_served_from_the_cache(api, pred_version, workspace):
    vid = pred_version["id"]
    first = api.post("/api/v1/evaluations", json={"pred_version_id": vid, "iou": 0.5}).get_json()
    again = api.post("/api/v1/evaluations", json={"pred_version_id": vid, "iou": 0.5}).get_json()
    assert first["cached"] is False and again["cached"] is True
    assert again["evaluation_id"] == first["evaluation_id"]
    for key in ("mAP50", "mAP50_95", "coco_stats", "voc_mAP", "per_class", "f1_sweep"):
        assert again[key] == first[key], key
    n = workspace.database.db.execute("SELECT count(*) FROM evaluations").fetchone()[0]
    labels = workspace.database.db.execute("SELECT count(*) FROM evaluation_labels").fetchone()[0]
    assert n == 1 and labels == pred_version["gt_boxes"] + pred_version["pred_boxes"]
    fresh = api.post("/api/v1/evaluations", json={"pred_version_id": vid, "refresh": True}).get_json()
    assert fresh["cached"] is False and fresh["mAP50"] == first["mAP50"]


def test_gt_version_vs_pred_version_matched_by_sha1(api, tmp_path):
    setup_project(api)
    gt, pred = scenes(8, seed=2)
    g = upload(api, pred_zip(tmp_path / "gt.zip", gt, None), name="gt")
    # predictions of six of the eight images, with no ground truth of their own
    some = {k: pred[k] for k in list(pred)[:6]}
    p = upload(api, pred_zip(tmp_path / "pr.zip", {k: [] for k in some}, some), name="pred")
    assert p["gt_boxes"] == 0 and p["pred_boxes"] > 0
    r = api.get(f"/api/v1/versions/{p['id']}/evaluation?gt={g['id']}")
    assert r.status_code == 200, r.get_json()
    res = r.get_json()
    assert res["mode"] == "matched" and res["images"] == 6
    _check_equal(api, res, g["id"], p["id"])
    # the pred version alone has no ground truth to compare with
    bad = api.get(f"/api/v1/versions/{p['id']}/evaluation").get_json()
    assert bad["code"] == "bad_input" and "ground truth" in bad["error"]


def test_labels_filter_the_dataset_view(api, pred_version, client):
    vid = pred_version["id"]
    res = api.get(f"/api/v1/versions/{vid}/evaluation").get_json()
    every = api.get(f"/api/v1/versions/{vid}/labels?limit=100").get_json()
    assert every["total"] == 8
    fps = api.get(f"/api/v1/versions/{vid}/labels?label=FP&limit=100").get_json()
    assert fps["counts"]["FP"] == res["fp"] and fps["counts"]["TP"] == res["tp"]
    assert fps["counts"]["FN"] == res["fn"] and fps["counts"]["MTP"] == res["tp"]
    assert 0 < fps["total"] < 8
    for a in fps["assets"]:
        assert any(b["label"] == "FP" for b in a["boxes"])
    shown_fp = sum(b["label"] == "FP" for a in fps["assets"] for b in a["boxes"])
    assert shown_fp == res["fp"]
    cat_fn = api.get(f"/api/v1/versions/{vid}/labels?label=FN&class=cat&limit=100").get_json()
    for a in cat_fn["assets"]:
        assert any(b["label"] == "FN" and b["class"] == "cat" for b in a["boxes"])
    assert sum(1 for a in cat_fn["assets"] for b in a["boxes"] if b["label"] == "FN" and b["class"] == "cat") \
        == res["per_class"]["cat"]["fn"]
    # the page: boxes coloured by label, filter form, only matching images
    html = client.get(f"/versions/{vid}/diagnosis?label=FP").get_data(as_text=True)
    assert 'class="label-FP' in html and f"{fps['total']} image(s)" in html
    assert html.count('<figure class="thumb"') == fps["total"]


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/v1/versions/999/evaluation", 404, "not_found"),
        ("/api/v1/versions/{vid}/evaluation?gt=999", 404, "not_found"),
        ("/api/v1/versions/{vid}/evaluation?iou=1.5", 400, "bad_input"),
        ("/api/v1/versions/{vid}/evaluation?iou=0", 400, "bad_input"),
        ("/api/v1/versions/{vid}/evaluation?conf=abc", 400, "bad_input"),
        ("/api/v1/versions/{gid}/evaluation", 400, "bad_input"),
        ("/api/v1/versions/{vid}/labels?label=XX", 400, "bad_input"),
    ],
)
def test_bad_input_has_one_error_shape(api, tmp_path, pred_version, url, status, code):
    gt, _ = scenes(3, seed=5)
    g = upload(api, pred_zip(tmp_path / "g.zip", gt, None), name="gt-only")
    r = api.get(url.format(vid=pred_version["id"], gid=g["id"]))
    assert r.status_code == status
    body = r.get_json()
    assert set(body) == {"error", "code"} and body["code"] == code


def test_evaluation_as_a_background_job_fills_the_cache(api, pred_version, app):
    vid = pred_version["id"]
    r = api.post("/api/v1/evaluations", json={"pred_version_id": vid, "iou": 0.6, "background": True})
    assert r.status_code == 202, r.get_json()
    job = r.get_json()["job"]
    assert job["kind"] == "evaluate" and job["category"] == "internal"
    done = run_job(app, job["id"])
    assert done["state"] == "done", done
    res = api.get(f"/api/v1/versions/{vid}/evaluation?iou=0.6").get_json()
    assert res["cached"] is True and res["evaluation_id"] == done["result"]["evaluation_id"]
    assert done["result"]["mAP50"] == res["mAP50"]
    bad = api.post("/api/v1/evaluations", json={"pred_version_id": vid, "iou": 3, "background": True})
    assert bad.status_code == 400 and bad.get_json()["code"] == "bad_input"


def test_matched_images_without_ground_truth_boxes(api, tmp_path):
    """The common images hold no GT box: every prediction is a false alarm, no crash."""
    setup_project(api)
    g = upload(api, pred_zip(tmp_path / "g.zip", {"x": [("cat", 1, 1, 20, 20)], "y": []}, None), name="gt")
    p = upload(api, pred_zip(tmp_path / "p.zip", {"y": []}, {"y": [("dog", 2, 2, 30, 30, 0.8)]}), name="pred")
    res = api.get(f"/api/v1/versions/{p['id']}/evaluation?gt={g['id']}").get_json()
    assert res["images"] == 1 and res["gt_boxes"] == 0 and res["fp"] == 1 and res["mAP50"] == -1
