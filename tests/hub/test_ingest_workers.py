"""Big imports hand their per-image work to child processes (hub.datasets.image_workers, or only the
file writes to hub.datasets.asset_store): the same records, reports and files as the inline path,
and nothing left behind when they fail."""

from __future__ import annotations

import hashlib
import zipfile

import pytest
from test_ingest import jpeg, png, png_header_claiming, resolve, run, voc, write

from hub.datasets import ingest_images
from hub.datasets.ingest import Source, asset_path, ingest_dir, ingest_source


@pytest.fixture(params=["image-workers", "writer-processes"])
def process_writer(monkeypatch, request):
    """Every import hands its per-image work to child processes, however small: all of it
    (hub.datasets.image_workers), or only the file writes (hub.datasets.asset_store)."""
    monkeypatch.setattr(ingest_images, "PROCESS_WRITER_MIN", 0)
    if request.param == "writer-processes":
        monkeypatch.setattr(ingest_images, "IMAGE_PROCESSES", 0)


@pytest.mark.parametrize("workers", [1, 3])
def test_process_writer_stores_the_same_files(tmp_path, process_writer, workers):
    files = {f"images/{i:03d}.jpg": jpeg(24, 24, seed=i % 30) for i in range(40)}  # 10 duplicates
    files |= {f"gt/{i:03d}.xml": voc(f"{i:03d}.jpg", [(1, 1, 10, 12, "cat")], 24, 24) for i in range(40)}
    root = write(tmp_path / "ds", files)
    pre = write(tmp_path / "pre", {"images/x.jpg": jpeg(24, 24, seed=3)})  # stored before: not ours
    ingest_dir(pre, assets_dir=tmp_path / "assets", resolve_class=resolve)
    res = ingest_dir(root, assets_dir=tmp_path / "assets", resolve_class=resolve, workers=workers)
    assert res.report.images == 30 and res.report.duplicates == 10
    stored = {p.name: p.read_bytes() for p in (tmp_path / "assets").rglob("*") if p.is_file()}
    assert len(stored) == 30 and all(hashlib.sha1(b).hexdigest() == name for name, b in stored.items())
    assert sorted(res.created_files) == sorted(str(asset_path(tmp_path / "assets", a.sha1)) for a in res.assets
                                               if a.sha1 != hashlib.sha1(jpeg(24, 24, seed=3)).hexdigest())


def test_process_writer_failure_midway_leaves_no_orphans(tmp_path, process_writer):
    root = write(tmp_path / "ds", {f"images/{i:03d}.jpg": jpeg(16, 16, seed=i) for i in range(200)})

    def boom(done, total):
        if done >= 50:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        run(root, tmp_path, progress=boom)
    assert [p for p in (tmp_path / "assets").rglob("*") if p.is_file()] == []


def test_process_writer_error_names_the_file_and_cleans_up(tmp_path, process_writer):
    images = {f"images/{i:03d}.jpg": jpeg(16, 16, seed=i) for i in range(20)}
    root = write(tmp_path / "ds", images)
    blocked = hashlib.sha1(images["images/007.jpg"]).hexdigest()
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / blocked[-2:]).write_bytes(b"a file where a shard folder must go")
    with pytest.raises(OSError, match=f"storing assets failed: .*{blocked}"):
        run(root, tmp_path)
    assert [p.name for p in (tmp_path / "assets").rglob("*") if p.is_file()] == [blocked[-2:]]


def test_image_workers_give_the_inline_result_for_every_kind_of_image(tmp_path, monkeypatch):
    """Worker processes verify, hash and store exactly as the importing thread does: same records,
    same skip reasons (broken, truncated, not an image, bomb), same files."""
    files = {f"images/{i:03d}.jpg": jpeg(24, 24, seed=i % 12) for i in range(30)}  # duplicates too
    files |= {"images/p.png": png(), "images/trunc.jpg": jpeg()[:-300], "images/text.jpg": b"hello",
              "images/bomb.png": png_header_claiming(20_000, 20_000)}
    files |= {f"gt/{i:03d}.xml": voc(f"{i:03d}.jpg", [(-2, 1, 10, 12, "cat")], 24, 24) for i in range(30)}
    root = write(tmp_path / "ds", files)
    z = tmp_path / "ds.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files.items():
            zf.writestr(rel, data)
    results = {}
    for mode in ("inline", "workers"):
        if mode == "workers":
            monkeypatch.setattr(ingest_images, "PROCESS_WRITER_MIN", 0)
        for kind, src in (("dir", root), ("zip", z)):
            assets = tmp_path / f"assets-{mode}-{kind}"
            if kind == "dir":
                res = ingest_dir(src, assets_dir=assets, resolve_class=resolve)
            else:
                res = ingest_source(Source("zip", str(src)), sharing_dir=tmp_path, tmp_dir=tmp_path / "t",
                                                  assets_dir=assets, resolve_class=resolve)
            stored = sorted(p.name for p in assets.rglob("*") if p.is_file())
            results[mode, kind] = (res.report, [(a.sha1, a.format, a.width, a.height, a.size_bytes, a.gt)
                                                for a in res.assets], stored, len(res.created_files))
    for kind in ("dir", "zip"):
        assert results["workers", kind] == results["inline", kind]
    report = results["workers", "zip"][0]
    assert report.images == 13 and report.duplicates == 18
    reasons_ = {s["file"]: s["reason"] for s in report.skipped}
    assert "truncated" in reasons_["images/trunc.jpg"] and "decompression bomb" in reasons_["images/bomb.png"]
    assert "not a JPEG, PNG or BMP" in reasons_["images/text.jpg"]


def test_entries_only_zipfile_reads_are_done_by_the_importing_thread(tmp_path, monkeypatch):
    """bzip2 entries get no member ref: the workers take the rest, the importing thread those."""
    files = {f"images/{i:02d}.jpg": jpeg(20, 20, seed=i) for i in range(12)}
    z = tmp_path / "mixed.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i, (rel, data) in enumerate(files.items()):
            zf.writestr(rel, data, compress_type=zipfile.ZIP_BZIP2 if i % 3 == 0 else zipfile.ZIP_DEFLATED)

    def imported(tag):
        res = ingest_source(Source("zip", str(z)), sharing_dir=tmp_path, tmp_dir=tmp_path / "t",
                            assets_dir=tmp_path / tag, resolve_class=resolve)
        return [(a.filename, a.sha1, a.width) for a in res.assets], sorted(res.created_files)

    inline = imported("inline")
    monkeypatch.setattr(ingest_images, "PROCESS_WRITER_MIN", 0)
    workers = imported("workers")
    assert workers[0] == inline[0] and len(workers[0]) == 12
    assert [p.rsplit("/", 1)[1] for p in workers[1]] == [p.rsplit("/", 1)[1] for p in inline[1]]
