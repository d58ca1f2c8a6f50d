"""A labeling task's files: VOC zip and COCO JSON exports read back (by detkit and by the hub's own import) keep
every box within a pixel; the export holds saved labels on the GT side and pre-annotations on the prediction side."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_tasks_helpers import create_task, labeling_project  # noqa: E402

from detkit.io.coco import read_coco  # noqa: E402
from detkit.io.voc import parse_voc  # noqa: E402

#: stem -> boxes saved in the task (fractional pixels on purpose)
LABELS = {
    "a": [{"x1": 2.25, "y1": 3.5, "x2": 20.75, "y2": 30.125, "class": "circle", "source": "prediction"},
          {"x1": 30.4, "y1": 1.6, "x2": 63.9, "y2": 47.2, "class": "square"}],
    "c": [],
    "d": [{"x1": 0, "y1": 0, "x2": 64, "y2": 48, "class": "triangle"}],
}


@pytest.fixture
def labeled(api, tmp_path):
    lab = labeling_project(api, tmp_path)
    task = create_task(api, "lab", lab["version_id"])
    for stem, boxes in LABELS.items():
        r = api.put(f"/api/v1/labeling/tasks/{task['id']}/images/{lab['sha1'][stem]}",
                    json={"boxes": boxes, "done": True})
        assert r.status_code == 200, r.get_json()
    return lab, task


def _close(got: list[tuple], want: list[dict]) -> None:
    assert len(got) == len(want), (got, want)
    for (name, *xyxy), w in zip(sorted(got), sorted(want, key=lambda b: b["class"]), strict=True):
        assert name == w["class"]
        assert max(abs(a - b) for a, b in zip(xyxy, (w["x1"], w["y1"], w["x2"], w["y2"]), strict=True)) <= 1.0


def test_voc_zip_round_trip(api, labeled, tmp_path):
    lab, task = labeled
    r = api.get(f"/api/v1/labeling/tasks/{task['id']}/export?format=voc")
    assert r.status_code == 200, r.data[:300]
    assert f"task-{task['id']}-voc.zip" in r.headers["Content-Disposition"]
    zf = zipfile.ZipFile(io.BytesIO(r.data))
    names = set(zf.namelist())
    assert {"images/a.jpg", "gt/a.xml", "gt/c.xml", "gt/d.xml", "pred/a.xml", "pred/b.xml"} <= names
    assert "gt/b.xml" not in names  # never saved: no labels, only its pre-annotation
    for stem, want in LABELS.items():
        ann = parse_voc(zf.read(f"gt/{stem}.xml"))
        _close([(b.name, b.x1, b.y1, b.x2, b.y2) for b in ann.boxes], want)
        assert all(b.tags["source"] in ("human", "prediction") for b in ann.boxes)
    pred = parse_voc(zf.read("pred/a.xml"))
    assert [(b.name, b.confidence) for b in pred.boxes] == [("circle", pytest.approx(0.9))]  # no "dog"

    # the hub imports its own export back: the same boxes, their sources as box tags
    path = tmp_path / "back.zip"
    path.write_bytes(r.data)
    r = api.post("/api/v1/projects/lab/datasets/import", data={"file": (io.BytesIO(path.read_bytes()), path.name),
                                                             "name": "back"}, content_type="multipart/form-data")
    assert r.status_code == 202, r.get_json()
    from hub_helpers import wait_ready

    v = wait_ready(api, r.get_json()["version_id"])
    assert v["state"] == "ready", v
    assets = {Path(a["filename"]).stem: a for a in
              api.get(f"/api/v1/versions/{v['id']}/assets?limit=50").get_json()["assets"]}
    for stem, want in LABELS.items():
        gt = [b for b in assets[stem]["boxes"] if b["kind"] == "gt"]
        _close([(b["class"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in gt], want)
    sources = {b["class"]: b["tags"]["source"] for b in assets["a"]["boxes"] if b["kind"] == "gt"}
    assert sources == {"circle": "prediction", "square": "human"}
    assert assets["a"]["tags"] == {"mining_score": "0.91"}


def test_coco_json_round_trip(api, labeled):
    lab, task = labeled
    r = api.get(f"/api/v1/labeling/tasks/{task['id']}/export?format=coco")
    assert r.status_code == 200
    doc = read_coco(r.data)
    assert sorted(doc.categories.values()) == ["circle", "square", "triangle"]
    anns = {Path(name).stem: a for name, a in doc.annotations.items()}
    assert set(anns) == {"a", "b", "c", "d"} and anns["b"].boxes == []
    for stem, want in LABELS.items():
        _close([(b.name, b.x1, b.y1, b.x2, b.y2) for b in anns[stem].boxes], want)
    assert json.loads(r.data)["images"][0]["width"] == 64


def test_export_errors(api, labeled):
    _, task = labeled
    r = api.get(f"/api/v1/labeling/tasks/{task['id']}/export?format=yolo")
    assert r.status_code == 400 and "yolo" in r.get_json()["error"]
    assert api.get("/api/v1/labeling/tasks/999/export?format=voc").status_code == 404
