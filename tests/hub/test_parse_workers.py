"""Annotation files parsed by worker processes give exactly what the inline parser gives."""

from __future__ import annotations

import struct
import zipfile

import pytest
from test_ingest import jpeg, resolve, voc, write

from detkit.errors import UnknownClasses
from hub.datasets import layout as layout_module
from hub.datasets import parse_workers
from hub.datasets.ingest import Limits, Source, ingest_dir, ingest_source
from hub.datasets.sources import open_tree


def _files(n: int = 30) -> dict[str, bytes]:
    files = {f"images/{i:03d}.jpg": jpeg(24, 24, seed=i) for i in range(n)}
    files |= {f"gt/{i:03d}.xml": voc(f"{i:03d}.jpg", [(1, 1, 10 + i % 5, 12, "cat"), (-3, 2, 9, 30, "kitty")], 24, 24)
              for i in range(n)}
    files["gt/007.xml"] = b"<annotation><object><name>cat</name></object>"  # malformed
    files["gt/008.xml"] = b"<annotation><object><name>cat</name><bndbox><xmin>x</xmin></bndbox></object></annotation>"
    files["gt/orphan.xml"] = voc("orphan.jpg", [(1, 1, 5, 5, "dog")])
    return files


def _zip(path, files, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _ingest_zip(zip_path, tmp_path, tag):
    return ingest_source(Source("zip", str(zip_path)), sharing_dir=tmp_path, tmp_dir=tmp_path / "tmp",
                         assets_dir=tmp_path / f"assets-{tag}", resolve_class=resolve)


def _force_workers(monkeypatch):
    """Worker processes parse every side, however small and whatever the core count."""
    monkeypatch.setattr(layout_module, "PARALLEL_MIN", 1)
    monkeypatch.setattr(layout_module, "PARSE_PROCESSES", 2)


def _same(a, b):
    assert a.report == b.report
    assert [(r.sha1, r.filename, r.gt) for r in a.assets] == [(r.sha1, r.filename, r.gt) for r in b.assets]


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_workers_parse_a_zip_exactly_like_the_inline_path(tmp_path, monkeypatch, compression):
    z = _zip(tmp_path / "ds.zip", _files(), compression)
    inline = _ingest_zip(z, tmp_path, "inline")
    _force_workers(monkeypatch)

    def not_inline(*args):
        raise AssertionError("a worker failed: its files were parsed inline")

    monkeypatch.setattr(parse_workers, "parse_inline", not_inline)
    parallel = _ingest_zip(z, tmp_path, "parallel")
    _same(inline, parallel)
    reasons = {s["file"]: s["reason"] for s in parallel.report.skipped}
    assert "malformed XML" in reasons["images/007.jpg"] and "<xmin> is not a number" in reasons["images/008.jpg"]
    assert parallel.report.images == 28 and parallel.report.fixed  # clipped boxes reported


def test_workers_parse_a_folder_and_yolo_like_the_inline_path(tmp_path, monkeypatch):
    root = write(tmp_path / "voc", _files(12))
    yolo = {f"images/{i}.jpg": jpeg(20, 20, seed=i) for i in range(6)}
    yolo |= {f"labels/{i}.txt": b"0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.4\n" for i in range(6)}
    yolo |= {"labels/5.txt": b"0 0.5 0.5\n", "classes.txt": b"cat\ndog\n"}
    yroot = write(tmp_path / "yolo", yolo)
    inline = [ingest_dir(r, assets_dir=tmp_path / "a1", resolve_class=resolve) for r in (root, yroot)]
    _force_workers(monkeypatch)
    parallel = [ingest_dir(r, assets_dir=tmp_path / "a2", resolve_class=resolve) for r in (root, yroot)]
    for a, b in zip(inline, parallel, strict=True):
        _same(a, b)
    assert parallel[1].report.format == "yolo" and parallel[1].report.images == 5


def test_a_failed_worker_costs_only_time(tmp_path, monkeypatch):
    z = _zip(tmp_path / "ds.zip", _files())
    inline = _ingest_zip(z, tmp_path, "inline")
    _force_workers(monkeypatch)
    monkeypatch.setattr(parse_workers.sys, "executable", "/bin/false")  # every worker exits at once
    _same(inline, _ingest_zip(z, tmp_path, "fallback"))


def test_an_annotation_entry_lying_about_its_size_stops_the_import(tmp_path, monkeypatch):
    files = {"images/a.jpg": jpeg(), "gt/a.xml": voc("a.jpg", [(1, 1, 5, 5, "cat")]) + b" " * 4000}
    z = _zip(tmp_path / "liar.zip", files)
    raw = bytearray(z.read_bytes())
    pos = raw.find(b"gt/a.xml")
    while pos != -1:  # the xml's uncompressed size, in its local and its central header
        for back, sig, off in ((30, b"PK\x03\x04", 22), (46, b"PK\x01\x02", 24)):
            if raw[pos - back:pos - back + 4] == sig:
                raw[pos - back + off:pos - back + off + 4] = struct.pack("<I", 100)
        pos = raw.find(b"gt/a.xml", pos + 1)
    z.write_bytes(bytes(raw))
    with open_tree(Source("zip", str(z)), sharing_dir=tmp_path, tmp_dir=tmp_path, limits=Limits()) as tree:
        assert tree.files["gt/a.xml"].file_size == 100
    _force_workers(monkeypatch)
    with pytest.raises(Exception, match="more data than declared|zip bomb"):
        _ingest_zip(z, tmp_path, "liar")
    assert [p for p in (tmp_path / "assets-liar").rglob("*") if p.is_file()] == []


def test_unknown_classes_found_by_workers_leave_no_file(tmp_path, monkeypatch):
    files = {f"images/{i}.jpg": jpeg(20, 20, seed=i) for i in range(8)}
    files |= {f"gt/{i}.xml": voc(f"{i}.jpg", [(1, 1, 5, 5, "cat" if i else "zebra")], 20, 20) for i in range(8)}
    z = _zip(tmp_path / "ds.zip", files)
    _force_workers(monkeypatch)
    with pytest.raises(UnknownClasses, match="zebra"):
        _ingest_zip(z, tmp_path, "unknown")
    assert [p for p in (tmp_path / "assets-unknown").rglob("*") if p.is_file()] == []
