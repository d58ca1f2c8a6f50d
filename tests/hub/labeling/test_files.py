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


def _ls_export(api, task_id) -> list:
    pytest.importorskip("hub.labeling.ls_format", reason="hub/labeling/ls_format.py (Label Studio JSON) not here")
    r = api.get(f"/api/v1/labeling/tasks/{task_id}/export?format=ls")
    assert r.status_code == 200, r.data[:300]
    return json.loads(r.data)


def _import(api, task_id, doc, name="export.json"):
    data = {"file": (io.BytesIO(json.dumps(doc).encode()), name)}
    return api.post(f"/api/v1/labeling/tasks/{task_id}/import", data=data, content_type="multipart/form-data")


def test_label_studio_json_round_trip(api, labeled):
    lab, task = labeled
    doc = _ls_export(api, task["id"])
    by = {t["data"]["ymir_sha1"]: t for t in doc}
    assert set(by) == set(lab["sha1"].values())
    a, b = by[lab["sha1"]["a"]], by[lab["sha1"]["b"]]
    assert a["data"]["image"].endswith(f"{lab['sha1']['a']}/image") or lab["sha1"]["a"] in a["data"]["image"]
    pred = b["predictions"][0]["result"]
    assert [r["value"]["rectanglelabels"] for r in pred] == [["square"]]
    assert all(0 <= r["value"][k] <= 100 for r in pred for k in ("x", "y", "width", "height"))
    assert "annotations" not in b or not b["annotations"]  # b was never saved

    # Label Studio's export of that project, imported into a fresh task over the same version
    fresh = create_task(api, "lab", lab["version_id"])
    r = _import(api, fresh["id"], doc)
    assert r.status_code == 200, r.get_json()
    report = r.get_json()
    assert report["images"] == len(LABELS) and report["boxes"] == 3, report
    images = {i["sha1"]: i for i in api.get(f"/api/v1/labeling/tasks/{fresh['id']}/images").get_json()["images"]}
    for stem, want in LABELS.items():
        img = images[lab["sha1"][stem]]
        assert img["state"] == "done" and img["source"] == "saved"
        _close([(x["class"], x["x1"], x["y1"], x["x2"], x["y2"]) for x in img["boxes"]], want)
    assert images[lab["sha1"]["b"]]["state"] == "pending"  # no annotation: left as it was


def test_label_studio_import_reports_and_refuses(api, labeled):
    lab, task = labeled
    doc = _ls_export(api, task["id"])
    a = next(t for t in doc if t["data"]["ymir_sha1"] == lab["sha1"]["a"])
    result = a["annotations"][0]["result"]
    bad_class = json.loads(json.dumps(result[0]))
    bad_class["value"]["rectanglelabels"] = ["hexagon"]
    a["annotations"][0]["result"] = [*result, bad_class]
    fresh = create_task(api, "lab", lab["version_id"])
    report = _import(api, fresh["id"], [a]).get_json()
    assert report["images"] == 1 and report["boxes"] == 2, report
    assert any("hexagon" in p for p in report["problems"]), report
    assert report["files"][0]["sha1"] == lab["sha1"]["a"] and report["files"][0]["problems"]

    # an export of another task's images: refused, nothing saved
    other = json.loads(json.dumps(a))
    other["data"]["ymir_sha1"] = "f" * 40
    r = _import(api, fresh["id"], [other])
    assert r.status_code == 400 and "another task" in r.get_json()["error"], r.get_json()
    assert _import(api, fresh["id"], {"not": "a list"}).status_code == 400
    r = api.post(f"/api/v1/labeling/tasks/{fresh['id']}/import",
                 data={"file": (io.BytesIO(b"{broken"), "x.json")}, content_type="multipart/form-data")
    assert r.status_code == 400 and "x.json" in r.get_json()["error"]


def test_label_studio_import_glue_with_a_stub_parser(api, labeled, monkeypatch):
    """What files.py adds around ls_format.parse_export (stubbed): no annotation leaves an image alone, a second copy of
    an image is reported, an export of another size is scaled to the hub's image, parser notes reach the report."""
    lab, task = labeled
    s = lab["sha1"]
    box = {"x1": 4, "y1": 4, "x2": 20, "y2": 20, "class": "circle"}
    entries = [(s["a"], 128, 96, [box], ["rotation 30 degrees: its axis-aligned envelope was imported"]),
               (s["b"], 64, 48, None, []),
               (s["a"], 64, 48, [], []),
               (s["c"], 64, 48, [{**box, "class": "square"}], [])]
    ls_format = pytest.importorskip("hub.labeling.ls_format")
    monkeypatch.setattr(ls_format, "parse_export", lambda data: entries)
    fresh = create_task(api, "lab", lab["version_id"])
    r = api.post(f"/api/v1/labeling/tasks/{fresh['id']}/import",
                 data={"file": (io.BytesIO(b"[]"), "ls.json")}, content_type="multipart/form-data")
    assert r.status_code == 200, r.get_json()
    rep = r.get_json()
    assert rep["images"] == 2 and rep["unannotated_images"] == [s["b"]] and rep["duplicate_images"] == [s["a"]]
    text = " | ".join(rep["problems"])
    assert "envelope" in text and "scaled" in text and "listed twice" in text, text
    images = {i["sha1"]: i for i in api.get(f"/api/v1/labeling/tasks/{fresh['id']}/images").get_json()["images"]}
    assert [(b["x1"], b["x2"]) for b in images[s["a"]]["boxes"]] == [(2, 10)]  # 128x96 -> 64x48
    assert images[s["b"]]["source"] == "prediction" and images[s["b"]]["state"] == "pending"
    monkeypatch.setattr(ls_format, "parse_export", lambda data: [(s["b"], 64, 48, None, []), (None, 0, 0, [], [])])
    r = api.post(f"/api/v1/labeling/tasks/{fresh['id']}/import",
                 data={"file": (io.BytesIO(b"[]"), "ls.json")}, content_type="multipart/form-data")
    assert r.status_code == 400 and "no annotated task" in r.get_json()["error"]
    assert "1 without data.ymir_sha1" in r.get_json()["error"]
