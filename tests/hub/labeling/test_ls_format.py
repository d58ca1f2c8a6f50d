"""Label Studio's JSON both ways (hub.labeling.ls_format): percent, rotation, which annotation, bad labels."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET

import pytest

from detkit.errors import BadInput
from hub.labeling import ls_format as lsf

SHA = "a" * 40


def _rect(x, y, w, h, label="cat", rotation=0, ow=200, oh=100, **extra):
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": ow,
            "original_height": oh, "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation,
                                             "rectanglelabels": [label]}, **extra}


def test_labeling_config_names_every_class_and_matches_the_results():
    xml = lsf.labeling_config(["cat", "dog & \"co\""])
    root = ET.fromstring(xml)
    image = root.find("Image")
    rect = root.find("RectangleLabels")
    assert image.get("name") == "image" and image.get("value") == "$image"
    assert rect.get("name") == "label" and rect.get("toName") == "image"
    assert [lab.get("value") for lab in rect.findall("Label")] == ["cat", 'dog & "co"']
    r = lsf.boxes_to_results([{"x1": 0, "y1": 0, "x2": 1, "y2": 1, "class": "cat"}], 10, 10)[0]
    assert (r["from_name"], r["to_name"]) == (rect.get("name"), image.get("name"))
    with pytest.raises(BadInput):
        lsf.labeling_config([])
    with pytest.raises(BadInput):
        lsf.labeling_config(["cat", "cat"])


def test_pixels_to_percent_and_back():
    (r,) = lsf.boxes_to_results([{"x1": 20, "y1": 10, "x2": 120, "y2": 60, "class": "cat", "confidence": 0.8}],
                                200, 100)
    assert r["type"] == "rectanglelabels" and r["original_width"] == 200 and r["original_height"] == 100
    v = r["value"]
    assert (v["x"], v["y"], v["width"], v["height"]) == (10.0, 10.0, 50.0, 50.0)
    assert v["rectanglelabels"] == ["cat"] and v["rotation"] == 0 and r["score"] == 0.8
    boxes, problems = lsf.results_to_boxes([r], 200, 100, ["cat"])
    assert problems == []
    assert boxes == [{"x1": 20, "y1": 10, "x2": 120, "y2": 60, "class": "cat", "source": "human"}]


def test_round_trip_keeps_every_box_within_one_pixel():
    rng = random.Random(7)
    for _ in range(200):
        w, h = rng.randint(1, 8000), rng.randint(1, 8000)
        x1, y1 = rng.uniform(0, w - 0.5), rng.uniform(0, h - 0.5)
        box = {"x1": x1, "y1": y1, "x2": rng.uniform(x1 + 0.01, w), "y2": rng.uniform(y1 + 0.01, h), "class": "c"}
        # through JSON, as the file and the server carry it
        results = json.loads(json.dumps(lsf.boxes_to_results([box], w, h)))
        (back,), problems = lsf.results_to_boxes(results, w, h, ["c"])
        assert problems == []
        assert all(abs(back[k] - box[k]) <= 1.0 for k in ("x1", "y1", "x2", "y2")), (box, back, w, h)


def test_values_over_100_are_clipped_for_predictions():
    """Label Studio refuses prediction values over 100: a box sticking out is clipped into the image."""
    (r,) = lsf.boxes_to_results([{"x1": -5, "y1": 50, "x2": 230, "y2": 101.5, "class": "cat"}], 200, 100)
    v = r["value"]
    assert all(0 <= v[k] <= 100 for k in ("x", "y", "width", "height"))
    assert v["x"] + v["width"] <= 100 and v["y"] + v["height"] <= 100
    assert (v["x"], v["width"], v["y"], v["height"]) == (0, 100, 50, 50)


def test_task_json_carries_the_sha1_and_only_known_predictions():
    pred = [{"x1": 0, "y1": 0, "x2": 100, "y2": 50, "class": "cat", "confidence": 0.9},
            {"x1": 0, "y1": 0, "x2": 10, "y2": 10, "class": "zebra", "confidence": 0.5}]
    task = lsf.task_json(SHA, "http://hub/img", 200, 100, pred, ["cat", "dog"])
    assert task["data"] == {"image": "http://hub/img", "ymir_sha1": SHA}
    (p,) = task["predictions"]
    assert p["model_version"] and [r["value"]["rectanglelabels"] for r in p["result"]] == [["cat"]]
    assert p["score"] == 0.9
    assert "predictions" not in lsf.task_json(SHA, "u", 200, 100, [], ["cat"])


def test_rotation_imports_the_axis_aligned_envelope_and_says_so():
    # 40x20 px box at (100, 40) in a 200x100 image, turned 90 degrees clockwise about its top-left corner:
    # with y down it now spans x 80..100, y 40..80
    r = _rect(50, 40, 20, 20, rotation=90)
    (b,), problems = lsf.results_to_boxes([r], 200, 100, ["cat"])
    assert (b["x1"], b["y1"], b["x2"], b["y2"]) == pytest.approx((80, 40, 100, 80), abs=1e-6)
    assert len(problems) == 1 and "rotated 90" in problems[0] and "envelope" in problems[0]
    # 45 degrees: a wider envelope holding all four corners
    (b,), _ = lsf.results_to_boxes([_rect(50, 40, 20, 20, rotation=45)], 200, 100)
    assert b["x1"] < 100 < b["x2"] and b["y1"] == pytest.approx(40) and b["y2"] > 60
    # 360 is no rotation
    _, problems = lsf.results_to_boxes([_rect(50, 40, 20, 20, rotation=360)], 200, 100)
    assert problems == []


def test_unknown_labels_and_bad_results_are_dropped_one_by_one():
    results = [_rect(10, 10, 10, 10, "cat"), _rect(10, 10, 10, 10, "hexagon"),
               _rect(10, 10, 0, 10, "cat"), {"type": "choices", "value": {"choices": ["x"]}},
               _rect(10, 10, 10, 10, "cat") | {"value": {"x": 1, "y": 1, "width": 1, "height": 1,
                                                          "rectanglelabels": []}},
               _rect(90, 90, 30, 30, "cat")]
    boxes, problems = lsf.results_to_boxes(results, 200, 100, ["cat", "dog"])
    assert len(boxes) == 2  # the good one and the clipped one
    assert boxes[1]["x2"] == 200 and boxes[1]["y2"] == 100
    text = " | ".join(problems)
    assert "'hexagon' is not one of the task's classes" in text
    assert "zero size" in text and "'choices' is not a box" in text and "without a label" in text
    assert "clipped" in text
    # no classes given: the label is kept for the task to judge
    boxes, problems = lsf.results_to_boxes([_rect(10, 10, 10, 10, "hexagon")], 200, 100)
    assert boxes[0]["class"] == "hexagon" and problems == []
    # no image size: the result's own original_width/height
    (b,), _ = lsf.results_to_boxes([_rect(50, 50, 50, 50, ow=400, oh=300)], None, None)
    assert (b["x1"], b["y1"], b["x2"], b["y2"]) == (200, 150, 400, 300)


def test_pick_annotation_drops_cancelled_prefers_ground_truth_else_latest():
    old = {"id": 1, "updated_at": "2025-01-01T10:00:00.000000Z", "result": []}
    new = {"id": 2, "updated_at": "2025-03-01T10:00:00.000000Z", "result": []}
    newest_cancelled = {"id": 3, "updated_at": "2025-06-01T10:00:00Z", "was_cancelled": True, "result": []}
    gt_old = {"id": 4, "updated_at": "2024-01-01T10:00:00Z", "ground_truth": True, "result": []}
    assert lsf.pick_annotation([old, new, newest_cancelled]) is new
    assert lsf.pick_annotation([old, gt_old, new]) is gt_old
    assert lsf.pick_annotation([newest_cancelled]) is None
    assert lsf.pick_annotation([]) is None
    # offsets compare as instants: 12:00+02:00 is before 11:00Z
    a = {"id": 5, "updated_at": "2025-01-01T12:00:00+02:00"}
    b = {"id": 6, "updated_at": "2025-01-01T11:00:00Z"}
    assert lsf.pick_annotation([b, a]) is b


def test_parse_export():
    export = [
        {"id": 101, "data": {"image": "http://h/x", "ymir_sha1": SHA},
         "annotations": [{"id": 1, "was_cancelled": True, "updated_at": "2025-09-01T00:00:00Z",
                          "result": [_rect(0, 0, 50, 50)]},
                         {"id": 2, "updated_at": "2025-01-01T00:00:00Z", "result": [_rect(10, 20, 50, 50, "dog")]},
                         {"id": 3, "updated_at": "2025-02-01T00:00:00Z",
                          "result": [_rect(10, 20, 50, 50, "cat", rotation=30)]}]},
        {"id": 102, "data": {"image": f"http://h/api/v1/labeling/files/tok/{'b' * 40}"},
         "annotations": [{"id": 9, "was_cancelled": True, "result": []}],
         "predictions": [{"result": [_rect(0, 0, 1, 1, ow=64, oh=48)]}]},
        {"id": 103, "data": {"image": "x", "ymir_sha1": "c" * 40}, "annotations": [{"id": 4, "result": []}]},
    ]
    (a, b, c) = lsf.parse_export(json.dumps(export).encode())
    sha1, w, h, boxes, problems = a
    assert (sha1, w, h) == (SHA, 200, 100)
    assert [x["class"] for x in boxes] == ["cat"]
    text = " | ".join(problems)
    assert "1 cancelled" in text and "updated last (id 3)" in text and "envelope" in text
    assert b[0] == "b" * 40 and b[3] is None and (b[1], b[2]) == (64, 48)  # cancelled only: nothing to import
    assert c[0] == "c" * 40 and c[3] == []  # "no objects" is an annotation
    for bad in (b"{broken", b'{"a": 1}', b"[1, 2]"):
        with pytest.raises(BadInput):
            lsf.parse_export(bad)
