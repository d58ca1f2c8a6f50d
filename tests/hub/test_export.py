"""Export then re-import gives the same images and boxes, per format."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput, NotFound
from detkit.io.voc import to_voc
from detkit.synth import CLASSES, write_sample_zip
from hub.datasets.export import export_coco, export_names, export_voc_zip, export_yolo
from hub.datasets.ingest import AssetRecord, Limits, Source, ingest_dir, open_source


def resolve(name: str) -> str | None:
    return name if name in CLASSES else None


def import_zip(z: Path, tmp_path: Path, assets: Path):
    with open_source(Source("zip", str(z)), sharing_dir=tmp_path, tmp_dir=tmp_path / "tmp", limits=Limits()) as root:
        return ingest_dir(root, assets_dir=assets, resolve_class=resolve)


@pytest.fixture
def imported(tmp_path: Path):
    """Eight sample scenes with predictions (confidence, YMIR extras) added to the zip."""
    z = write_sample_zip(tmp_path / "s.zip", images=8, seed=3)
    with zipfile.ZipFile(z, "a") as zf:
        for i in range(0, 8, 2):
            pred = ImageAnnotation(filename=f"scene_{i:06d}.jpg", width=0, height=0)
            pred.boxes = [Box(5, 6, 40.25, 50, "circle", confidence=0.75, box_quality=0.5, tags={"k": "v"})]
            zf.writestr(f"pred/scene_{i:06d}.xml", to_voc(pred))
        zf.writestr("pred/meta.yaml", "model: m1\n")
    res = import_zip(z, tmp_path, tmp_path / "assets")
    assert res.report.images == 8 and sum(res.report.pred_boxes_per_class.values()) == 4
    return res


def boxes_of(res, side: str) -> dict[str, list[tuple]]:
    out = {}
    for r in res.assets:
        ann = getattr(r, side)
        out[Path(r.filename).stem] = None if ann is None else [
            (b.name, round(b.x1, 2), round(b.y1, 2), round(b.x2, 2), round(b.y2, 2),
             None if b.confidence is None else round(b.confidence, 3)) for b in ann.boxes]
    return out


def same_images(a, b) -> bool:
    return sorted(r.sha1 for r in a.assets) == sorted(r.sha1 for r in b.assets)


def test_voc_round_trip(tmp_path, imported):
    out = export_voc_zip(imported.assets, tmp_path / "assets", tmp_path / "out" / "voc.zip",
                         pred_meta=imported.report.pred_meta)
    back = import_zip(out, tmp_path, tmp_path / "assets2")
    assert same_images(imported, back)
    assert boxes_of(back, "gt") == boxes_of(imported, "gt")
    assert boxes_of(back, "pred") == boxes_of(imported, "pred")
    assert back.report.pred_meta == {"model": "m1"}
    assert [r.image_quality for r in back.assets] == [r.image_quality for r in imported.assets]
    assert back.assets[0].pred.boxes[0].tags == {"k": "v"}


def test_coco_round_trip_zip_and_json(tmp_path, imported):
    out = export_coco(imported.assets, tmp_path / "coco.zip", list(CLASSES), assets_dir=tmp_path / "assets")
    back = import_zip(out, tmp_path, tmp_path / "assets2")
    assert back.report.format == "coco" and same_images(imported, back)
    assert boxes_of(back, "gt") == boxes_of(imported, "gt")
    pred_in = {k: v for k, v in boxes_of(imported, "pred").items() if v}
    pred_back = {k: v for k, v in boxes_of(back, "pred").items() if v}
    assert pred_back == pred_in
    doc = json.loads(export_coco(imported.assets, tmp_path / "gt.json", list(CLASSES)).read_text())
    assert len(doc["images"]) == 8 and len(doc["annotations"]) == sum(imported.report.boxes_per_class.values())
    with pytest.raises(BadInput, match="asset store"):
        export_coco(imported.assets, tmp_path / "x.zip", list(CLASSES))


def test_yolo_round_trip(tmp_path, imported):
    out = export_yolo(imported.assets, tmp_path / "assets", tmp_path / "yolo.zip", list(CLASSES))
    back = import_zip(out, tmp_path, tmp_path / "assets2")
    assert back.report.format == "yolo" and same_images(imported, back)
    for side in ("gt", "pred"):
        got, want = boxes_of(back, side), boxes_of(imported, side)
        assert got.keys() == want.keys()
        for k in want:
            assert (got[k] is None) == (want[k] is None)
            for g, w in zip(got[k] or [], want[k] or [], strict=True):
                assert g[0] == w[0] and g[1:5] == pytest.approx(w[1:5], abs=0.02) and g[5] == w[5]
    with zipfile.ZipFile(out) as zf:
        assert zf.read("classes.txt").decode().split() == list(CLASSES)


def test_export_names_are_safe_and_unique():
    recs = [AssetRecord("a" * 40, "png", 1, 1, 1, "../../etc/x.jpg", 0.5),
            AssetRecord("b" * 40, "jpeg", 1, 1, 1, "etc/x.jpg", 0.5),
            AssetRecord("c" * 40, "jpeg", 1, 1, 1, "/abs/y.jpeg", 0.5)]
    assert export_names(recs) == ["etc/x_aaaaaaaa.png", "etc/x_bbbbbbbb.jpg", "abs/y.jpg"]


def test_missing_asset_fails_and_leaves_no_partial_zip(tmp_path):
    rec = AssetRecord("d" * 40, "jpeg", 1, 1, 1, "x.jpg", 0.5)
    with pytest.raises(NotFound, match="missing"):
        export_voc_zip([rec], tmp_path / "assets", tmp_path / "out.zip")
    assert list(tmp_path.iterdir()) == []
