"""Version operations on real imported data: filter, merge, sample, split, export (and re-import)."""

from __future__ import annotations

import json
import zipfile

import pytest
from hub_helpers import make_zip

from detkit.errors import BadInput, Conflict
from hub.datasets import ops, service
from hub.store import assets as asset_store
from hub.store import classes as class_store
from hub.store import projects as project_store


def _import(ws, path, name=None, unknown="stop"):
    v = service.start_import(ws, "p", kind="zip", value=str(path), name=name, unknown=unknown)
    return service.run_import(ws, v["id"])["version_id"]


@pytest.fixture
def ws(workspace):
    for c in ("circle", "square", "triangle"):
        class_store.add_class(workspace.database, c)
    project_store.create_project(workspace.database, "p")
    return workspace


@pytest.fixture
def tagged(ws, tmp_path):
    z = make_zip(
        tmp_path / "t.zip",
        {
            "a": [("circle", 1, 1, 9, 9, {"quality": "good"})],
            "b": [("square", 1, 1, 9, 9), ("circle", 2, 2, 8, 8)],
            "c": [("triangle", 1, 1, 9, 9, {"quality": "bad"})],
            "d": [],
        },
        tags={"a": {"scene": "day"}, "b": {"scene": "night"}, "c": {"scene": "day"}},
    )
    return _import(ws, z, "tagged")


def _files(ws, version_id):
    return sorted(a["filename"] for a in asset_store.iter_version(ws.database, version_id))


def test_filter_by_classes_and_tags(ws, tagged):
    assert _files(ws, ops.filter_version(ws, tagged, classes_in=["circle"])["id"]) == ["a.jpg", "b.jpg"]
    assert _files(ws, ops.filter_version(ws, tagged, classes_out=["circle"])["id"]) == ["c.jpg", "d.jpg"]
    both = ops.filter_version(ws, tagged, classes_in=["circle", "triangle"], classes_out=["square"])
    assert _files(ws, both["id"]) == ["a.jpg", "c.jpg"]
    assert _files(ws, ops.filter_version(ws, tagged, asset_tags={"scene": "day"})["id"]) == ["a.jpg", "c.jpg"]
    assert _files(ws, ops.filter_version(ws, tagged, box_tags={"quality": "bad"})["id"]) == ["c.jpg"]
    assert _files(ws, ops.filter_version(ws, tagged, box_tags={"quality": ""})["id"]) == ["a.jpg", "c.jpg"]
    out = ops.filter_version(ws, tagged, classes_in=["circle"], name="circles")
    assert out["group_name"] == "circles" and out["parent_ids"] == [tagged]
    assert out["class_counts"]["gt"]["circle"] == {"boxes": 2, "images": 2}
    assert out["gt_boxes"] == 3  # whole images are kept, with all their boxes
    with pytest.raises(BadInput):
        ops.filter_version(ws, tagged)
    with pytest.raises(BadInput, match="tag key"):
        ops.filter_version(ws, tagged, asset_tags={'x"); DROP TABLE assets; --': "1"})


def test_versions_are_immutable_and_numbered(ws, tagged):
    before = _files(ws, tagged)
    f = ops.filter_version(ws, tagged, classes_in=["square"])
    assert f["group_id"] != 0 and f["number"] == 2 and _files(ws, tagged) == before


def test_merge_strategies(ws, tmp_path):
    host = _import(ws, make_zip(tmp_path / "h.zip", {"a": [("circle", 1, 1, 9, 9)], "b": []}), "h")
    # the same image "a" (same pixels, so same sha1) labelled differently in the guest
    guest = _import(ws, make_zip(tmp_path / "g.zip", {"a": [("square", 1, 1, 9, 9)], "x": []}), "g")
    with pytest.raises(Conflict, match="share 1 image"):
        ops.merge_versions(ws, host, [guest])
    kept = ops.merge_versions(ws, host, [guest], strategy="host")
    taken = ops.merge_versions(ws, host, [guest], strategy="guest")
    assert kept["images"] == taken["images"] == 3
    assert set(kept["class_counts"]["gt"]) == {"circle"}
    assert set(taken["class_counts"]["gt"]) == {"square"}
    assert kept["group_name"] == "h" and kept["parent_ids"] == [host, guest]
    with pytest.raises(BadInput):
        ops.merge_versions(ws, host, [guest], strategy="whatever")


def test_sample_is_seeded(ws, sample_zip):
    src = _import(ws, sample_zip, unknown="add")
    a = ops.sample_version(ws, src, count=5, seed=7)
    b = ops.sample_version(ws, src, count=5, seed=7)
    c = ops.sample_version(ws, src, count=5, seed=8)
    assert a["images"] == 5 and _files(ws, a["id"]) == _files(ws, b["id"])
    assert _files(ws, a["id"]) != _files(ws, c["id"])
    assert ops.sample_version(ws, src, ratio=0.5)["images"] == 6
    for bad in ({"count": 0}, {"count": 13}, {"ratio": 1.5}, {}, {"count": 2, "ratio": 0.5}):
        with pytest.raises(BadInput):
            ops.sample_version(ws, src, **bad)


def test_split_covers_everything_once(ws, sample_zip):
    src = _import(ws, sample_zip, unknown="add")
    parts = ops.split_version(ws, src, ratios={"train": 0.5, "val": 0.25, "test": 0.25}, seed=1)
    files = {k: set(_files(ws, v["id"])) for k, v in parts.items()}
    assert [len(files[k]) for k in ("train", "val", "test")] == [6, 3, 3]
    assert set().union(*files.values()) == set(_files(ws, src))
    assert (
        sum(v["gt_boxes"] for v in parts.values()) == ops.ds_store.get_version(ws.database, src)["gt_boxes"]
    )
    again = ops.split_version(ws, src, ratios={"train": 0.5, "val": 0.25, "test": 0.25}, seed=1)
    assert set(_files(ws, again["train"]["id"])) == files["train"]
    assert parts["train"]["group_name"] == "sample-train"
    with pytest.raises(BadInput, match="sum to 1"):
        ops.split_version(ws, src, ratios={"train": 0.5, "val": 0.2})


def test_export_round_trip(ws, tagged, tmp_path):
    src = ops.ds_store.get_version(ws.database, tagged)
    voc = ops.export_version(ws, tagged, "voc", tmp_path / "e.zip")
    with zipfile.ZipFile(voc) as zf:
        names = zf.namelist()
    assert sum(n.startswith("images/") for n in names) == 4 and sum(n.startswith("gt/") for n in names) == 4
    back = ops.ds_store.get_version(ws.database, _import(ws, voc, "back"))
    assert back["images"] == 4 and back["class_counts"] == src["class_counts"]
    coco = json.loads(ops.export_version(ws, tagged, "coco", tmp_path / "c.json").read_text())
    assert len(coco["images"]) == 4 and len(coco["annotations"]) == src["gt_boxes"]
    yolo = ops.export_version(ws, tagged, "yolo", tmp_path / "y.zip")
    with zipfile.ZipFile(yolo) as zf:
        assert zf.read("classes.txt").decode().split() == ["circle", "square", "triangle"]
    with pytest.raises(BadInput):
        ops.export_version(ws, tagged, "tfrecord", tmp_path / "x")


def test_api_ops_and_export(api, ws, tagged):
    r = api.post(f"/api/v1/versions/{tagged}/filter", json={"classes_in": ["circle"]})
    assert r.status_code == 201 and r.get_json()["images"] == 2
    r = api.post(f"/api/v1/versions/{tagged}/sample", json={"count": 2, "seed": 3})
    assert r.get_json()["images"] == 2
    r = api.post(f"/api/v1/versions/{tagged}/split", json={"train": 0.5, "val": 0.5})
    assert {k: v["images"] for k, v in r.get_json().items()} == {"train": 2, "val": 2}
    sample_id = api.get("/api/v1/versions").get_json()["versions"]
    r = api.post(
        f"/api/v1/versions/{tagged}/merge", json={"guests": [sample_id[-1]["id"]], "strategy": "host"}
    )
    assert r.status_code == 201 and r.get_json()["images"] == 4
    r = api.post(f"/api/v1/versions/{tagged}/merge", json={"guests": [sample_id[-1]["id"]]})
    assert r.status_code == 409 and r.get_json()["code"] == "conflict"
    r = api.get(f"/api/v1/versions/{tagged}/export?format=coco")
    assert r.status_code == 200 and len(json.loads(r.data)["images"]) == 4
    r = api.get(f"/api/v1/versions/{tagged}/export?format=voc")
    assert r.status_code == 200 and r.data[:2] == b"PK"
    assert not list(ws.settings.exports_dir.glob("*"))  # temp export files are removed after sending


def test_predictions_are_kept_drawn_and_exported(ws, tmp_path, client):
    from detkit.annotations import Box, ImageAnnotation
    from detkit.io.voc import to_voc

    pred = ImageAnnotation(
        filename="a.jpg",
        width=64,
        height=48,
        boxes=[Box(2, 2, 30, 30, "square", confidence=0.75), Box(5, 5, 9, 9, "circle", confidence=0.5)],
    )
    z = make_zip(
        tmp_path / "p.zip",
        {"a": [("circle", 1, 1, 9, 9)]},
        extra={"pred/a.xml": to_voc(pred), "pred/meta.yaml": b"model: demo-model\n"},
    )
    vid = _import(ws, z, "with-pred")
    v = ops.ds_store.get_version(ws.database, vid)
    assert v["gt_boxes"] == 1 and v["pred_boxes"] == 2
    assert v["class_counts"]["pred"]["square"] == {"boxes": 1, "images": 1}
    html = client.get(f"/versions/{vid}").get_data(as_text=True)
    assert html.count('class="pred"') == 2 and "0.75" in html  # predictions drawn dashed, with confidence
    out = ops.export_version(ws, vid, "voc", tmp_path / "e.zip")
    with zipfile.ZipFile(out) as zf:
        assert b"demo-model" in zf.read("pred/meta.yaml")
        assert zf.read("pred/a.xml").count(b"<object>") == 2


def test_a_failure_after_ingest_removes_the_new_files(ws, sample_zip, tmp_path):
    """The store step fails (too many images for this hub): no rows, no orphan asset files; shared files stay."""
    from hub.store.workspace import Workspace

    keep = _import(ws, make_zip(tmp_path / "k.zip", {"kept": []}), "kept")
    before = sorted(p for p in ws.settings.assets_dir.rglob("*") if p.is_file())
    small = Workspace(ws.settings.with_(max_images=2))
    v = service.start_import(small, "p", kind="zip", value=str(sample_zip), unknown="add")
    with pytest.raises(BadInput, match="exceed this hub's limit of 2"):
        service.run_import(small, v["id"])
    failed = ops.ds_store.get_version(ws.database, v["id"])
    assert failed["state"] == "failed" and failed["images"] == 0
    assert sorted(p for p in ws.settings.assets_dir.rglob("*") if p.is_file()) == before
    assert ops.ds_store.get_version(ws.database, keep)["images"] == 1
    small.close()
