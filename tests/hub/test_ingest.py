"""The ingest engine on real folders: happy paths per format, bad input, classes, duplicates, cleanup."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput, UnknownClasses
from detkit.io.voc import to_voc
from hub.datasets import ingest_images
from hub.datasets.ingest import Limits, Source, asset_path, ingest_dir, store_asset

CLASSES = {"cat": "cat", "kitty": "cat", "dog": "dog"}


def resolve(name: str) -> str | None:
    return CLASSES.get(name)


def jpeg(w: int = 64, h: int = 48, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png(w: int = 64, h: int = 48, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def png_header_claiming(w: int, h: int) -> bytes:
    """A tiny PNG whose IHDR claims ``w`` x ``h`` pixels: a decompression bomb's header."""
    data = bytearray(png(1, 1))
    ihdr = struct.pack(">II", w, h) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def voc(name: str, boxes: list[tuple], w: int = 64, h: int = 48, **extra) -> bytes:
    ann = ImageAnnotation(filename=name, width=w, height=h, **extra)
    ann.boxes = [Box(*b[:4], b[4], **(b[5] if len(b) > 5 else {})) for b in boxes]
    return to_voc(ann)


def write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def run(root: Path, tmp_path: Path, **kw):
    return ingest_dir(root, assets_dir=tmp_path / "assets", resolve_class=resolve, **kw)


def reasons(report) -> dict[str, str]:
    return {s["file"]: s["reason"] for s in report.skipped}


def test_voc_happy_path_keeps_every_field(tmp_path):
    xml = voc("a.jpg", [(1.5, 2, 30, 40, "Kitty", {"difficult": True, "truncated": True, "pose": "Left",
                                                    "box_quality": 0.7, "tags": {"occluded": "yes"}}),
                        (10, 10, 20, 20, "dog")], image_quality=0.42, tags={"weather": "sunny"})
    root = write(tmp_path / "ds", {"images/a.jpg": jpeg(), "images/sub/b.png": png(),
                                   "gt/a.xml": xml, "gt/sub/b.xml": voc("b.png", [(0, 0, 5, 5, "cat")])})
    res = run(root, tmp_path)
    assert res.report.format == "voc"
    assert res.report.images == 2 and res.report.skipped == []
    assert res.report.boxes_per_class == {"cat": 2, "dog": 1}
    a, b = res.assets
    assert (a.filename, a.format, a.width, a.height) == ("a.jpg", "jpeg", 64, 48)
    assert (b.filename, b.format) == ("sub/b.png", "png")
    box = a.gt.boxes[0]
    assert (box.x1, box.name, box.difficult, box.truncated, box.pose) == (1.5, "cat", True, True, "Left")
    assert box.box_quality == pytest.approx(0.7) and box.tags == {"occluded": "yes"}
    assert a.image_quality == pytest.approx(0.42) and a.gt.tags == {"weather": "sunny"}
    assert b.image_quality is None  # none given: computed from the pixels on first use, not at import
    for rec in res.assets:
        assert asset_path(tmp_path / "assets", rec.sha1).read_bytes()[:2] in (b"\xff\xd8", b"\x89P")
    assert sorted(res.created_files) == sorted(str(asset_path(tmp_path / "assets", r.sha1)) for r in res.assets)


def test_layout_inside_one_top_folder_and_jpegimages_annotations(tmp_path):
    root = write(tmp_path / "ds", {"VOC2012/JPEGImages/a.jpg": jpeg(), "VOC2012/Annotations/a.xml":
                                   voc("a.jpg", [(1, 1, 9, 9, "cat")]), "VOC2012/ImageSets/Main/train.txt": b"a\n"})
    res = run(root, tmp_path)
    assert res.report.images == 1 and res.assets[0].gt.boxes[0].name == "cat"


def test_coco_happy_path_with_predictions_list(tmp_path):
    gt = {"images": [{"id": 7, "file_name": "a.jpg", "width": 64, "height": 48}],
          "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [2, 3, 10, 20], "iscrowd": 0}],
          "categories": [{"id": 3, "name": "dog"}]}
    pred = [{"image_id": 7, "category_id": 3, "bbox": [2, 3, 11, 20], "score": 0.9}]
    root = write(tmp_path / "ds", {"images/a.jpg": jpeg(), "gt/coco-annotations.json": json.dumps(gt).encode(),
                                   "pred/coco-annotations.json": json.dumps(pred).encode(),
                                   "pred/meta.yaml": b"model: tiny-det\nversion: 3\n"})
    res = run(root, tmp_path)
    assert res.report.format == "coco"
    rec = res.assets[0]
    b = rec.gt.boxes[0]
    assert (b.x1, b.y1, b.x2, b.y2, b.name) == (2, 3, 12, 23, "dog")
    assert rec.pred.boxes[0].confidence == pytest.approx(0.9)
    assert res.report.pred_meta == {"model": "tiny-det", "version": 3}
    assert res.report.pred_boxes_per_class == {"dog": 1}


def test_yolo_happy_path_with_data_yaml(tmp_path):
    root = write(tmp_path / "ds", {"images/a.jpg": jpeg(100, 50), "labels/a.txt": b"1 0.5 0.5 0.2 0.4\n",
                                   "data.yaml": b"names: {0: cat, 1: dog}\n"})
    res = run(root, tmp_path)
    assert res.report.format == "yolo"
    b = res.assets[0].gt.boxes[0]
    assert (b.name, b.x1, b.y1, b.x2, b.y2) == ("dog", pytest.approx(40), pytest.approx(15), pytest.approx(60),
                                                pytest.approx(35))


def test_yolo_with_classes_txt_in_gt_and_pred(tmp_path):
    root = write(tmp_path / "ds", {"images/a.jpg": jpeg(), "gt/a.txt": b"0 0.5 0.5 0.5 0.5\n",
                                   "gt/classes.txt": b"cat\ndog\n", "pred/a.txt": b"1 0.5 0.5 0.5 0.5 0.25\n"})
    res = run(root, tmp_path)
    assert res.assets[0].gt.boxes[0].name == "cat"
    assert res.assets[0].pred.boxes[0].name == "dog" and res.assets[0].pred.boxes[0].confidence == 0.25


def test_pred_voc_with_meta_yaml(tmp_path):
    pred = voc("a.jpg", [(1, 1, 20, 20, "cat", {"confidence": 0.8})])
    root = write(tmp_path / "ds", {"images/a.jpg": jpeg(), "gt/a.xml": voc("a.jpg", [(1, 1, 20, 20, "cat")]),
                                   "pred/a.xml": pred, "pred/meta.yaml": b"model_name: yolo-tiny\n"})
    res = run(root, tmp_path)
    assert res.assets[0].pred.boxes[0].confidence == pytest.approx(0.8)
    assert res.report.pred_meta == {"model_name": "yolo-tiny"}


def test_images_only_and_content_decides_format(tmp_path):
    root = write(tmp_path / "ds", {"images/really_png.jpg": png(), "images/c.bmp": _bmp()})
    res = run(root, tmp_path)
    assert res.report.format == "images"
    assert sorted((r.filename, r.format) for r in res.assets) == [("c.bmp", "bmp"), ("really_png.jpg", "png")]
    assert all(r.gt is None for r in res.assets)


def _bmp() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buf, "BMP")
    return buf.getvalue()


def test_duplicates_are_skipped_and_counted(tmp_path):
    root = write(tmp_path / "ds", {"images/a.jpg": jpeg(), "images/b.jpg": jpeg(), "images/c.jpg": jpeg(seed=1)})
    res = run(root, tmp_path)
    assert res.report.images == 2 and res.report.duplicates == 1
    assert reasons(res.report) == {"images/b.jpg": "duplicate of images/a.jpg"}
    assert len(res.created_files) == 2


def test_existing_asset_is_not_rewritten_nor_reported_created(tmp_path):
    root = write(tmp_path / "ds", {"images/a.jpg": jpeg()})
    first = run(root, tmp_path)
    path = Path(first.created_files[0])
    mtime = path.stat().st_mtime_ns
    second = run(root, tmp_path)
    assert second.created_files == [] and second.report.images == 1
    assert path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    "data, reason",
    [
        (jpeg()[:-600], "truncated"),
        (b"hello, I am text\n" * 10, "not a JPEG, PNG or BMP"),
        (png_header_claiming(20_000, 20_000), "decompression bomb"),
        (b"GIF89a" + bytes(40), "not a JPEG, PNG or BMP"),
    ],
    ids=["truncated", "text-named-jpg", "pixel-bomb", "gif"],
)
def test_bad_images_are_skipped_with_the_reason(tmp_path, data, reason):
    root = write(tmp_path / "ds", {"images/bad.jpg": data, "images/good.jpg": jpeg(),
                                   "gt/bad.xml": voc("bad.jpg", [(1, 1, 5, 5, "cat")])})
    res = run(root, tmp_path)
    assert [r.filename for r in res.assets] == ["good.jpg"]
    assert reason in reasons(res.report)["images/bad.jpg"]


def test_pixel_limit_is_checked_locally(tmp_path):
    root = write(tmp_path / "ds", {"images/a.png": png_header_claiming(2000, 2000)})
    res = run(root, tmp_path, limits=Limits(max_image_pixels=1_000_000))
    assert "exceeds the limit of 1000000" in reasons(res.report)["images/a.png"]


@pytest.mark.parametrize(
    "xml",
    [
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<annotation><object><name>&x;</name></object></annotation>",
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<annotation><filename>&lol2;</filename></annotation>",
    ],
    ids=["xxe", "billion-laughs"],
)
def test_hostile_xml_is_refused_and_its_image_skipped(tmp_path, xml):
    root = write(tmp_path / "ds", {"images/a.jpg": jpeg(), "gt/a.xml": xml})
    res = run(root, tmp_path)
    assert res.assets == [] and res.created_files == []
    assert "DOCTYPE" in reasons(res.report)["images/a.jpg"]


def test_box_outside_is_clipped_and_zero_area_rejected(tmp_path):
    xml = voc("a.jpg", [(-5, 10, 80, 30, "cat"), (70, 0, 90, 10, "dog"), (10, 10, 10, 20, "dog"),
                        (5, 5, 15, 15, "dog")])
    root = write(tmp_path / "ds", {"images/a.jpg": jpeg(64, 48), "gt/a.xml": xml})
    res = run(root, tmp_path)
    boxes = res.assets[0].gt.boxes
    assert [(b.x1, b.y1, b.x2, b.y2) for b in boxes] == [(0, 10, 64, 30), (5, 5, 15, 15)]
    actions = [(f["box"], f["action"]) for f in res.report.fixed]
    assert actions == [(1, "clipped"), (2, "rejected"), (3, "rejected")]
    assert all(f["file"] == "images/a.jpg" and f["reason"] for f in res.report.fixed)
    assert res.report.boxes_per_class == {"cat": 1, "dog": 1}


def _unknown_dataset(tmp_path: Path) -> Path:
    return write(tmp_path / "ds", {
        "images/a.jpg": jpeg(), "images/b.jpg": jpeg(seed=2),
        "gt/a.xml": voc("a.jpg", [(1, 1, 9, 9, "cat"), (2, 2, 8, 8, " Zebra ")]),
        "gt/b.xml": voc("b.jpg", [(1, 1, 9, 9, "lion")]),
        "pred/b.xml": voc("b.jpg", [(1, 1, 9, 9, "tiger", {"confidence": 0.5})]),
    })


@pytest.mark.parametrize("writer", ["inline", "image-workers", "writer-processes"])
def test_unknown_classes_stop_lists_all_and_leaves_no_file(tmp_path, monkeypatch, writer):
    if writer != "inline":
        monkeypatch.setattr(ingest_images, "PROCESS_WRITER_MIN", 0)
    if writer == "writer-processes":
        monkeypatch.setattr(ingest_images, "IMAGE_PROCESSES", 0)
    root = _unknown_dataset(tmp_path)
    with pytest.raises(UnknownClasses) as exc:
        run(root, tmp_path)
    assert exc.value.names == ["lion", "tiger", "zebra"]
    # images are stored while the annotations are parsed: what was stored is removed again
    assert [p for p in (tmp_path / "assets").rglob("*") if p.is_file()] == []


def test_unknown_classes_ignore_drops_and_counts(tmp_path):
    res = run(_unknown_dataset(tmp_path), tmp_path, unknown="ignore")
    assert res.report.images == 2
    assert res.report.boxes_per_class == {"cat": 1}
    assert res.report.ignored_boxes == {"lion": 1, "tiger": 1, "zebra": 1}
    assert res.report.added_classes == []


def test_unknown_classes_add_keeps_and_lists_them(tmp_path):
    res = run(_unknown_dataset(tmp_path), tmp_path, unknown="add")
    assert res.report.added_classes == ["lion", "tiger", "zebra"]
    assert res.report.boxes_per_class == {"cat": 1, "lion": 1, "zebra": 1}
    assert res.report.pred_boxes_per_class == {"tiger": 1}


def test_bad_strategy_is_refused(tmp_path):
    with pytest.raises(BadInput, match="strategy"):
        run(_unknown_dataset(tmp_path), tmp_path, unknown="guess")


def test_no_images_folder_and_empty_dataset(tmp_path):
    root = write(tmp_path / "ds", {"gt/a.xml": voc("a.jpg", [])})
    with pytest.raises(BadInput, match="no images/"):
        run(root, tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="empty"):
        run(tmp_path / "empty", tmp_path)


def test_orphan_annotations_and_stray_files_are_reported(tmp_path):
    root = write(tmp_path / "ds", {"images/a.jpg": jpeg(), "gt/a.xml": voc("a.jpg", []),
                                   "gt/ghost.xml": voc("ghost.jpg", [(1, 1, 5, 5, "cat")]), "gt/notes.md": b"x"})
    res = run(root, tmp_path)
    r = reasons(res.report)
    assert "no image" in r["gt/ghost.xml"] and "not a voc annotation" in r["gt/notes.md"]
    assert res.assets[0].gt is not None and res.assets[0].gt.boxes == []


def test_symlink_out_of_the_dataset_is_not_read(tmp_path):
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(jpeg(seed=5))
    root = write(tmp_path / "ds", {"images/a.jpg": jpeg()})
    (root / "images" / "link.jpg").symlink_to(outside)
    res = run(root, tmp_path)
    assert [r.filename for r in res.assets] == ["a.jpg"]
    assert "outside the dataset" in reasons(res.report)["images/link.jpg"]


def test_progress_is_reported_up_to_the_total(tmp_path):
    root = write(tmp_path / "ds", {f"images/{i:03d}.jpg": jpeg(16, 16, seed=i) for i in range(120)})
    calls = []
    run(root, tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (120, 120)
    assert len(calls) >= 20 and all(t == 120 for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_failed_ingest_leaves_no_orphan_files(tmp_path):
    root = write(tmp_path / "ds", {f"images/{i:03d}.jpg": jpeg(16, 16, seed=i) for i in range(60)})
    pre = write(tmp_path / "ds2", {"images/x.jpg": jpeg(16, 16, seed=3)})  # already stored: must survive
    kept = Path(run(pre, tmp_path).created_files[0])

    def boom(done, total):
        if done >= 20:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        run(root, tmp_path, progress=boom)
    files = [p for p in (tmp_path / "assets").rglob("*") if p.is_file()]
    assert files == [kept]


def test_threaded_workers_give_the_same_result_as_one(tmp_path):
    files = {f"images/{i:03d}.jpg": jpeg(24, 24, seed=i % 30) for i in range(40)}  # 10 duplicates
    files |= {f"gt/{i:03d}.xml": voc(f"{i:03d}.jpg", [(-2, 1, 10, 12, "cat"), (3, 3, 3, 9, "dog")], 24, 24)
              for i in range(40)}
    files["images/zz.jpg"] = b"not an image"
    root = write(tmp_path / "ds", files)
    one = ingest_dir(root, assets_dir=tmp_path / "a1", resolve_class=resolve, workers=1)
    many = ingest_dir(root, assets_dir=tmp_path / "a2", resolve_class=resolve, workers=3)
    assert [a.sha1 for a in many.assets] == [a.sha1 for a in one.assets]
    assert [a.gt for a in many.assets] == [a.gt for a in one.assets]
    assert many.report == one.report and one.report.duplicates == 10
    assert len(many.created_files) == 30


@pytest.mark.parametrize("workers", [1, 3])
def test_failed_ingest_leaves_no_orphans_sequential_or_threaded(tmp_path, workers):
    root = write(tmp_path / "ds", {f"images/{i:03d}.jpg": jpeg(16, 16, seed=i) for i in range(200)})

    def boom(done, total):
        if done >= 50:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError):
        ingest_dir(root, assets_dir=tmp_path / "assets", resolve_class=resolve, workers=workers, progress=boom)
    assert [p for p in (tmp_path / "assets").rglob("*") if p.is_file()] == []


def test_ingest_source_reads_a_zip_in_place_like_ingest_dir(tmp_path):

    from hub.datasets.ingest import ingest_source, open_source

    files = {"top/images/a.jpg": jpeg(), "top/images/b.png": png(), "top/images/c.jpg": b"junk",
             "top/gt/a.xml": voc("a.jpg", [(1, 1, 70, 9, "cat")]), "top/gt/ghost.xml": voc("g.jpg", []),
             "top/pred/a.xml": voc("a.jpg", [(1, 1, 9, 9, "dog", {"confidence": 0.5})]),
             "top/pred/meta.yaml": b"model: x\n"}
    z = tmp_path / "ds.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    kw = {"sharing_dir": tmp_path, "tmp_dir": tmp_path / "tmp", "limits": Limits()}
    direct = ingest_source(Source("zip", str(z)), assets_dir=tmp_path / "a1", resolve_class=resolve, **kw)
    with open_source(Source("zip", str(z)), **kw) as root:
        extracted = ingest_dir(root, assets_dir=tmp_path / "a2", resolve_class=resolve)
    assert direct.report == extracted.report
    assert [(a.sha1, a.gt, a.pred) for a in direct.assets] == [(a.sha1, a.gt, a.pred) for a in extracted.assets]
    assert direct.report.images == 2 and direct.report.pred_meta == {"model": "x"}
    assert not (tmp_path / "tmp").exists() or list((tmp_path / "tmp").iterdir()) == []


def test_not_a_number_boxes_are_rejected_and_bad_quality_dropped(tmp_path):
    xml = (b"<annotation><filename>a.jpg</filename><image_quality>7.5</image_quality>"
           b"<object><name>cat</name><bndbox><xmin>nan</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
           b"</object><object><name>dog</name><confidence>nan</confidence><bndbox><xmin>1</xmin><ymin>1</ymin>"
           b"<xmax>9</xmax><ymax>9</ymax></bndbox></object><object><name>dog</name><bndbox><xmin>1</xmin>"
           b"<ymin>1</ymin><xmax>inf</xmax><ymax>9</ymax></bndbox></object><object><name>cat</name><bndbox>"
           b"<xmin>1</xmin><ymin>2</ymin><xmax>99</xmax><ymax>9</ymax></bndbox></object></annotation>")
    root = write(tmp_path / "ds", {"images/a.jpg": jpeg(), "gt/a.xml": xml})
    rec = run(root, tmp_path).assets[0]
    assert [(b.x1, b.x2) for b in rec.gt.boxes] == [(1, 64)]
    assert rec.image_quality is None  # 7.5 is not a score in [0, 1]
    fixed = run(root, tmp_path).report.fixed
    assert [(f["box"], f["action"]) for f in fixed] == [(1, "rejected"), (2, "rejected"), (3, "rejected"),
                                                         (4, "clipped")]
    assert all("not a finite number" in f["reason"] for f in fixed[:3])


def test_store_asset_creates_once_and_repairs_a_file_cut_short(tmp_path):
    data = jpeg()
    sha1 = hashlib.sha1(data).hexdigest()
    path = asset_path(tmp_path, sha1)
    assert store_asset(tmp_path, sha1, data) == str(path) and path.read_bytes() == data
    before = path.stat().st_mtime_ns
    assert store_asset(tmp_path, sha1, data) is None  # already there: not rewritten
    assert path.stat().st_mtime_ns == before
    path.write_bytes(data[:100])  # a write a crash cut short
    assert store_asset(tmp_path, sha1, data) == str(path) and path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == [sha1]  # no temp file left
