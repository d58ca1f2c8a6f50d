"""Export asset records as Pascal VOC, COCO or YOLO archives that :func:`ingest_dir` reads back.

``records`` are :class:`~hub.datasets.ingest.AssetRecord` objects or anything with the same
attributes (``sha1``, ``format``, ``width``, ``height``, ``filename``, ``image_quality``,
``gt``, ``pred``). Image bytes come from the asset store (``assets_dir/<sha1[-2:]>/<sha1>``).
Exported names are the original relative names made safe (no ``..`` or absolute parts), with the
extension of the real format and a ``_<sha1[:8]>`` suffix where two would share a stem (the
importers match annotations by stem). Archives are written to a temp name and moved into place.

* VOC: ``images/``, ``gt/*.xml``, ``pred/*.xml`` (+ ``pred/meta.yaml`` when given).
* COCO: a ``.json`` path gets the ground truth JSON only; a ``.zip`` path gets ``images/``,
  ``gt/coco-annotations.json`` and ``pred/coco-annotations.json`` (when there are predictions).
* YOLO: ``images/``, ``labels/*.txt``, ``classes.txt``, ``data.yaml``, ``pred/*.txt`` with a
  confidence column.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from detkit.annotations import ImageAnnotation
from detkit.errors import BadInput, NotFound
from detkit.imaging import EXTENSIONS
from detkit.io.coco import to_coco
from detkit.io.voc import to_voc
from detkit.io.yolo import to_yolo, write_class_names

Progress = Callable[[int, int], None] | None


def _safe_stem(filename: str, sha1: str) -> str:
    parts = [p for p in filename.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if not parts:
        return sha1
    path = PurePosixPath(*parts)
    return str(path.with_suffix("")) if path.suffix else str(path)


def export_names(records: Sequence[Any]) -> list[str]:
    """A unique, safe image path (relative to ``images/``) for each record, in order."""
    stems = [_safe_stem(r.filename, r.sha1) for r in records]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    names = []
    for r, s in zip(records, stems, strict=True):
        stem = f"{s}_{r.sha1[:8]}" if counts[s.lower()] > 1 else s
        names.append(stem + EXTENSIONS.get(r.format, ""))
    return names


def _image_bytes(assets_dir: Path, sha1: str) -> bytes:
    path = Path(assets_dir) / sha1[-2:] / sha1
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"asset {sha1} is missing from the asset store") from None


def _ann(rec: Any, name: str, side: str) -> ImageAnnotation | None:
    ann = getattr(rec, side)
    if ann is None:
        return None
    out = replace(ann, filename=name, width=rec.width, height=rec.height)
    if side == "gt" and out.image_quality is None:
        out.image_quality = rec.image_quality
    return out


class _Archive:
    """A zip written to ``out`` through a temp name (no half-written export is ever visible)."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")

    def __enter__(self) -> zipfile.ZipFile:
        self.zf = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_DEFLATED)
        return self.zf

    def __exit__(self, exc_type, exc, tb) -> None:
        self.zf.close()
        if exc_type is None:
            os.replace(self.tmp, self.out)
        else:
            self.tmp.unlink(missing_ok=True)


def _write_image(zf: zipfile.ZipFile, assets_dir: Path, rec: Any, name: str) -> None:
    zf.writestr(f"images/{name}", _image_bytes(assets_dir, rec.sha1), compress_type=zipfile.ZIP_STORED)


def _tick(progress: Progress, done: int, total: int) -> None:
    if progress is not None and (done % max(1, total // 50) == 0 or done == total):
        progress(done, total)


def export_voc_zip(records: Iterable[Any], assets_dir: Path, out: Path, *, pred_meta: dict | None = None,
                   progress: Progress = None) -> Path:
    """Write a VOC zip (``images/``, ``gt/*.xml``, ``pred/*.xml``) of ``records`` to ``out``."""
    records = list(records)
    names = export_names(records)
    with _Archive(out) as zf:
        for i, (rec, name) in enumerate(zip(records, names, strict=True), start=1):
            _write_image(zf, assets_dir, rec, name)
            stem = str(PurePosixPath(name).with_suffix(""))
            for side in ("gt", "pred"):
                ann = _ann(rec, name, side)
                if ann is not None:
                    zf.writestr(f"{side}/{stem}.xml", to_voc(ann))
            _tick(progress, i, len(records))
        if pred_meta is not None:
            zf.writestr("pred/meta.yaml", yaml.safe_dump(pred_meta, sort_keys=False))
    return Path(out)


def export_coco(records: Iterable[Any], out: Path, class_names: list[str], *, assets_dir: Path | None = None,
                progress: Progress = None) -> Path:
    """Write COCO: ``out.json`` = the ground truth JSON; ``out.zip`` = images + gt (+ pred) JSON."""
    records = list(records)
    names = export_names(records)
    gt = [_ann(r, n, "gt") or ImageAnnotation(filename=n, width=r.width, height=r.height)
          for r, n in zip(records, names, strict=True)]
    gt_json = json.dumps(to_coco(gt, class_names)).encode()
    out = Path(out)
    if out.suffix.lower() != ".zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_bytes(gt_json)
        os.replace(tmp, out)
        return out
    if assets_dir is None:
        raise BadInput("a COCO zip export needs the asset store to copy images from")
    with _Archive(out) as zf:
        zf.writestr("gt/coco-annotations.json", gt_json)
        if any(r.pred is not None for r in records):
            pred = [_ann(r, n, "pred") or ImageAnnotation(filename=n, width=r.width, height=r.height)
                    for r, n in zip(records, names, strict=True)]
            zf.writestr("pred/coco-annotations.json", json.dumps(to_coco(pred, class_names, predictions=True)))
        for i, (rec, name) in enumerate(zip(records, names, strict=True), start=1):
            _write_image(zf, assets_dir, rec, name)
            _tick(progress, i, len(records))
    return out


def export_yolo(records: Iterable[Any], assets_dir: Path, out: Path, class_names: list[str], *,
                progress: Progress = None) -> Path:
    """Write a YOLO zip (``images/``, ``labels/``, ``classes.txt``, ``data.yaml``, ``pred/``)."""
    records = list(records)
    names = export_names(records)
    index = {n: i for i, n in enumerate(class_names)}
    with _Archive(out) as zf:
        zf.writestr("classes.txt", write_class_names(class_names))
        zf.writestr("data.yaml", yaml.safe_dump({"path": ".", "train": "images", "val": "images",
                                                 "nc": len(class_names), "names": list(class_names)}))
        for i, (rec, name) in enumerate(zip(records, names, strict=True), start=1):
            _write_image(zf, assets_dir, rec, name)
            stem = str(PurePosixPath(name).with_suffix(""))
            for side, folder in (("gt", "labels"), ("pred", "pred")):
                ann = _ann(rec, name, side)
                if ann is not None:
                    zf.writestr(f"{folder}/{stem}.txt", to_yolo(ann, index, with_confidence=side == "pred"))
            _tick(progress, i, len(records))
    return Path(out)
