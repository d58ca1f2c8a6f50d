"""COCO and YOLO readers/writers: round trips, YMIR extras, and errors that say where."""

from __future__ import annotations

import json

import pytest

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput
from detkit.io.coco import read_coco, read_coco_predictions, to_coco
from detkit.io.yolo import parse_yolo, read_class_names, rows_to_annotation, to_yolo, write_class_names


def sample() -> list[ImageAnnotation]:
    a = ImageAnnotation(filename="a.jpg", width=100, height=80, image_quality=0.5, tags={"site": "x"})
    a.boxes = [Box(10, 20, 30.5, 60, "cat", difficult=True, truncated=True, pose="Left", box_quality=0.9,
                   tags={"occluded": "1"}), Box(0, 0, 100, 80, "dog")]
    return [a, ImageAnnotation(filename="b.jpg", width=50, height=40)]


def test_coco_round_trip_keeps_boxes_and_extras():
    doc = to_coco(sample(), ["cat", "dog"])
    back = read_coco(json.dumps(doc).encode(), "x.json")
    a = back.annotations["a.jpg"]
    assert a.boxes == sample()[0].boxes
    assert (a.image_quality, a.tags) == (0.5, {"site": "x"})
    assert back.annotations["b.jpg"].boxes == []
    assert [c["name"] for c in doc["categories"]] == ["cat", "dog"]


def test_coco_results_list_resolved_against_gt():
    gt = read_coco(json.dumps(to_coco(sample(), ["cat", "dog"])).encode())
    results = [{"image_id": 2, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.25}]
    pred = read_coco_predictions(json.dumps(results).encode(), gt)
    (box,) = pred.annotations["b.jpg"].boxes
    assert (box.x1, box.y1, box.x2, box.y2, box.name, box.confidence) == (1, 2, 4, 6, "dog", 0.25)
    with pytest.raises(BadInput, match="needs the ground truth"):
        read_coco_predictions(json.dumps(results).encode(), None)


@pytest.mark.parametrize(
    "doc, message",
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "expected a COCO object"),
        (json.dumps({"images": [], "categories": [{"id": 1}]}).encode(), r"categories\[0\]"),
        (json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "c"}],
                     "annotations": [{"image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1]}]}).encode(),
         r"annotations\[0\]: unknown image_id 9"),
        (json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "c"}],
                     "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, "x", 1]}]}).encode(),
         "finite number"),
        (json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "c"}],
                     "annotations": [{"image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1]}]}).encode(),
         "unknown category_id 5"),
    ],
)
def test_coco_errors_say_where(doc, message):
    with pytest.raises(BadInput, match=message):
        read_coco(doc, "gt/coco-annotations.json")


def test_coco_export_refuses_a_class_outside_the_list():
    with pytest.raises(BadInput, match="'dog'"):
        to_coco(sample(), ["cat"])


def test_yolo_round_trip():
    ann = sample()[0]
    index = {"cat": 0, "dog": 1}
    text = to_yolo(ann, index)
    rows = parse_yolo(text.encode(), ["cat", "dog"], "a.txt")
    back = rows_to_annotation(rows, 100, 80)
    for b, o in zip(back.boxes, ann.boxes, strict=True):
        assert b.name == o.name
        assert (b.x1, b.y1, b.x2, b.y2) == pytest.approx((o.x1, o.y1, o.x2, o.y2), abs=1e-3)
    pred = parse_yolo(to_yolo(ann, index, with_confidence=True).encode(), ["cat", "dog"])
    assert [r.confidence for r in pred] == [1.0, 1.0]


def test_yolo_class_names_files():
    assert read_class_names(write_class_names(["a", "b"]).encode(), "classes.txt") == ["a", "b"]
    assert read_class_names(b"names: [x, y]\n", "data.yaml") == ["x", "y"]
    assert read_class_names(b"names: {1: y, 0: x}\n", "data.yaml") == ["x", "y"]
    with pytest.raises(BadInput, match="indices"):
        read_class_names(b"names: {0: x, 2: y}\n", "data.yaml")
    with pytest.raises(BadInput, match="names"):
        read_class_names(b"nc: 2\n", "data.yaml")


@pytest.mark.parametrize(
    "line, message",
    [("0 0.5 0.5 0.1", "expected 'class cx cy w h"), ("a 0.5 0.5 0.1 0.1", "not numbers"),
     ("3 0.5 0.5 0.1 0.1", "class index 3"), ("0 nan 0.5 0.1 0.1", "non-finite")],
)
def test_yolo_errors_say_file_and_line(line, message):
    with pytest.raises(BadInput, match=f"labels/a.txt: line 2: {message}"):
        parse_yolo(f"0 0.5 0.5 0.1 0.1\n{line}\n".encode(), ["cat", "dog"], "labels/a.txt")
