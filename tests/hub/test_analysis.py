"""Dataset analysis on a hand-made dataset: totals, YMIR buckets (GT and predictions apart), warnings."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_diagnosis_helpers import pred_zip, run_job, setup_project, upload

from hub.analysis import BUCKETS, bucket_labels, class_warnings, histogram

# four 64x48 images: a (1 cat), b (cat filling the image + dog), c (nothing), d (3 cats)
GT = {
    "a": [("cat", 0, 0, 10, 10)],
    "b": [("cat", 0, 0, 64, 48), ("dog", 10, 10, 40, 40)],
    "c": [],
    "d": [("cat", 0, 0, 20, 20), ("cat", 0, 0, 30, 30), ("cat", 0, 0, 50, 40)],
}
PRED = {"a": [("cat", 0, 0, 10, 10, 0.9)], "b": [], "c": [], "d": []}


@pytest.fixture
def version(api, tmp_path):
    setup_project(api, classes=("cat", "dog", "bird"))
    return upload(api, pred_zip(tmp_path / "hand.zip", GT, PRED), name="hand")


def _counts(h, n=None):
    return h["counts"] if n is None else h["counts"][:n]


def test_buckets_are_ymirs_and_the_last_is_open_ended():
    assert BUCKETS["image_mb"][0] == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5]
    assert BUCKETS["hw_ratio"][0][-1] == 1.5 and len(BUCKETS["hw_ratio"][0]) == 16
    assert BUCKETS["box_area"][0] == [0, 1, 50, 500, 2500, 5000, 1e4, 5e4, 1e5, 2e5]
    assert BUCKETS["boxes_per_image"][0] == [0, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 100]
    h = histogram([0, 0.49, 0.5, 4.99, 5, 100], "image_mb")
    assert h["counts"] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2]
    assert h["labels"][0] == "0-0.5" and h["labels"][-1] == "5+"
    assert bucket_labels(BUCKETS["image_area"][0])[-1] == "8M+"
    # vectorised: a million values in one call
    big = histogram(np.random.default_rng(0).uniform(0, 3e5, 1_000_000), "box_area")
    assert sum(big["counts"]) == 1_000_000


def test_totals_and_histograms_of_a_hand_made_version(api, version):
    r = api.get(f"/api/v1/versions/{version['id']}/analysis")
    assert r.status_code == 200, r.get_json()
    a = r.get_json()
    assert a["images"] == 4 and a["storage_bytes"] > 0 and a["cached"] is False
    gt = a["gt"]
    assert gt["boxes"] == 6 and gt["avg_boxes_per_image"] == 1.5
    assert (gt["positive_images"], gt["negative_images"]) == (3, 1) and gt["positive_share"] == 0.75
    assert a["targets"] == {"classes": ["cat", "dog", "bird"], "positive_images": 3, "negative_images": 1}
    assert gt["per_class"]["cat"] == {"boxes": 5, "images": 3, "negative_images": 1, "share": pytest.approx(5 / 6)}
    assert gt["per_class"]["dog"]["boxes"] == 1 and gt["per_class"]["dog"]["images"] == 1
    h = gt["histograms"]
    # box areas 100, 3072, 900, 400, 900, 2000 px
    assert h["box_area"]["counts"] == [0, 0, 2, 3, 1, 0, 0, 0, 0, 0]
    # box / image (3072 px): .03, 1.0, .29, .13, .29, .65
    assert h["box_ratio"]["counts"] == [1, 1, 2, 0, 0, 0, 1, 0, 0, 0, 1]
    assert _counts(h["boxes_per_image"], 5) == [1, 1, 1, 1, 0]
    assert _counts(h["classes_per_image"], 4) == [1, 2, 1, 0]
    img = a["image_histograms"]
    assert img["image_area"]["counts"][0] == 4 and img["image_mb"]["counts"][0] == 4
    assert img["hw_ratio"]["counts"][7] == 4  # 48 / 64 = 0.75
    # import does not decode pixels: this first analysis scores the quality of all four images
    assert sum(img["quality"]["counts"]) == 4 and a["quality_unknown"] == 0
    # predictions counted apart from the ground truth
    pred = a["pred"]
    assert pred["boxes"] == 1 and pred["positive_images"] == 1
    assert pred["histograms"]["box_area"]["counts"][2] == 1 and sum(pred["histograms"]["box_area"]["counts"]) == 1
    assert pred["class_proportion"] == {"cat": 1.0}


def test_warnings(api, version):
    a = api.get(f"/api/v1/versions/{version['id']}/analysis").get_json()
    codes = {(w["code"], w["class"]) for w in a["warnings"]}
    assert ("few_boxes", "cat") in codes and ("few_boxes", "dog") in codes
    assert ("missing_target", "bird") in codes
    assert not any(c == "imbalanced" for c, _ in codes)  # dog has 1 box, a fifth of cat's 5


def test_warning_thresholds():
    per_class = {"big": {"boxes": 1000}, "tenth": {"boxes": 100}, "under": {"boxes": 99}, "ok": {"boxes": 500}}
    codes = {(w["code"], w["class"]) for w in class_warnings(per_class, ["big", "gone"])}
    assert codes == {("few_boxes", "tenth"), ("few_boxes", "under"), ("imbalanced", "under"),
                     ("missing_target", "gone")}


def test_cached_then_compared_side_by_side(api, version, tmp_path, client):
    first = api.get(f"/api/v1/versions/{version['id']}/analysis").get_json()
    t0 = time.perf_counter()
    again = api.get(f"/api/v1/versions/{version['id']}/analysis").get_json()
    assert again["cached"] is True and again["gt"] == first["gt"] and time.perf_counter() - t0 < 1.0
    other = upload(api, pred_zip(tmp_path / "o.zip", {"a": GT["a"], "c": []}, None), name="other")
    both = api.get(f"/api/v1/analysis?versions={version['id']},{other['id']}").get_json()
    assert [v["images"] for v in both["versions"]] == [4, 2] and "box_area" in both["buckets"]
    six = api.get("/api/v1/analysis?versions=1,2,3,4,5,6").get_json()
    assert six["code"] == "bad_input"
    assert api.get("/api/v1/versions/999/analysis").get_json()["code"] == "not_found"
    html = client.get(f"/projects/1/analysis?v={version['id']}&v={other['id']}").get_data(as_text=True)
    assert 'id="totals"' in html and "hand v1" in html and "other v1" in html
    assert html.count('class="hist-chart"') >= 12 and 'data-code="few_boxes"' in html
    assert client.get("/projects/1/analysis?v=1,2,3,4,5,6").status_code == 400


def test_analysis_as_a_background_job(api, version, app):
    r = api.post(f"/api/v1/versions/{version['id']}/analysis")
    assert r.status_code == 202
    job = r.get_json()["job"]
    assert job["kind"] == "analyze" and job["category"] == "internal"
    done = run_job(app, job["id"])
    assert done["state"] == "done", done
    assert done["result"]["images"] == 4 and done["result"]["warnings"] >= 3
    assert api.get(f"/api/v1/versions/{version['id']}/analysis").get_json()["cached"] is True
