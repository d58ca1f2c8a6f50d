"""The dataset ingest engine: a folder of images + annotations in, content-addressed assets and
records out. It touches only the filesystem; the hub stores the result in SQLite.

Steps of :func:`ingest_dir`:

1. find the layout (:mod:`hub.datasets.layout`);
2. per image (phase 1): read, verify the file's structure without decoding its pixels
   (:func:`detkit.imaging.inspect_image`: format by content, size from the header, pixel limit,
   truncation, markers/CRCs), sha1, store under ``assets_dir/<sha1[-2:]>/<sha1>`` (created
   exclusively; an existing file of the same size is never rewritten). Big imports (500 images or
   more) do this in worker processes (:mod:`hub.datasets.image_workers`) *while* this thread
   parses the annotations; small ones after parsing, in this thread;
3. parse every annotation file and resolve class names (``resolve_class``); with
   ``unknown="stop"`` raise :class:`UnknownClasses` listing every unknown name (a small import
   has stored nothing yet; a big one removes what its workers stored);
4. per image (phase 2): attach its annotations, clip boxes to the image (zero-area boxes
   rejected; both listed in ``report.fixed``); keep the first of identical images, count the
   rest as duplicates. The quality score, which needs the pixels, is computed later by whoever
   first needs it (:mod:`hub.datasets.quality`).

If anything fails midway, every asset file this call created is deleted again.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput, TooLarge, UnknownClasses
from detkit.imaging import ImageInfo, inspect_image
from detkit.io.yolo import rows_to_annotation
from hub.datasets.asset_store import InlineWriter, ProcessWriter, asset_path_str, store_asset
from hub.datasets.image_workers import ImageWorkers
from hub.datasets.ingest_images import (
    Item,
    Stored,
    default_workers,
    image_workers_for,
    store_images,
    stored_by_workers,
    writer_for,
)
from hub.datasets.layout import (
    PendingSide,
    Raw,
    SideAnnotations,
    find_layout,
    image_key,
    orphans,
    start_side,
)
from hub.datasets.sources import DirTree, FileTree, Limits, Source, open_source, open_tree

__all__ = [
    "AssetRecord", "IngestReport", "IngestResult", "Limits", "Source", "ingest_dir", "ingest_source",
    "open_source", "asset_path", "store_asset",
]

log = logging.getLogger(__name__)

UNKNOWN_STRATEGIES = ("stop", "ignore", "add")
@dataclass
class AssetRecord:
    """One imported image: its content address, verified format/size, quality and annotations."""

    sha1: str
    format: str  # "jpeg" | "png" | "bmp", decided by content
    width: int
    height: int
    size_bytes: int
    filename: str  # original path relative to the images folder
    image_quality: float | None  # the VOC <image_quality> when given (else computed later, on first use)
    gt: ImageAnnotation | None = None  # class names resolved to main names
    pred: ImageAnnotation | None = None


@dataclass
class IngestReport:
    """What an import did, for the user: counts, every skipped file and every fixed box, with reasons."""

    images: int = 0
    boxes_per_class: dict[str, int] = field(default_factory=dict)
    pred_boxes_per_class: dict[str, int] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)  # {"file", "reason"}
    fixed: list[dict] = field(default_factory=list)  # {"file", "set", "box" (1-based), "action", "reason"}
    added_classes: list[str] = field(default_factory=list)
    duplicates: int = 0
    pred_meta: dict | None = None
    format: str = "images"  # "voc" | "coco" | "yolo" | "images"
    ignored_boxes: dict[str, int] = field(default_factory=dict)  # unknown="ignore": dropped, per name


@dataclass
class IngestResult:
    assets: list[AssetRecord]
    report: IngestReport
    created_files: list[str]  # asset files this call newly created (paths as str: one per image)


def normalize(name: str) -> str:
    """Class names are matched lower-cased and trimmed."""
    return name.strip().lower()


def asset_path(assets_dir: Path, sha1: str) -> Path:
    """Where an asset with this sha1 lives (:func:`hub.datasets.asset_store.asset_path_str`)."""
    return Path(asset_path_str(assets_dir, sha1))


@dataclass
class _Outcome:
    rel: str  # relative to the dataset base, for the report
    record: AssetRecord | None = None
    skip_reason: str | None = None
    fixed: list[dict] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)


class _Ingest:
    """What a worker thread needs to turn one image into an asset."""

    def __init__(self, tree: FileTree, images_dir: str, writer: InlineWriter | ProcessWriter,
                 class_map: dict[str, str | None], limits: Limits):
        self.tree, self.images_dir, self.writer = tree, images_dir, writer
        self.class_map, self.limits = class_map, limits
        self.created: list[str] = []  # every file this import created, for the clean-up of a failure

    def _annotation(self, raw: Raw | None, side: str, rel: str, dec: ImageInfo,
                    out: _Outcome) -> ImageAnnotation | None:
        if raw is None:
            return None
        w, h = dec.width, dec.height
        src = rows_to_annotation(raw, w, h) if isinstance(raw, list) else raw
        boxes = [b for b in (self._fix(b, i, w, h, side, out) for i, b in enumerate(src.boxes)) if b]
        # a new record: the parsed annotation may serve another image with the same name stem
        return ImageAnnotation(rel, w, h, src.depth, boxes, src.image_quality, dict(src.tags))

    def _fix(self, b: Box, i: int, w: int, h: int, side: str, out: _Outcome) -> Box | None:
        main = self.class_map[b.name]
        if main is None:
            out.ignored[normalize(b.name)] += 1
            return None
        x1, y1, x2, y2 = b.x1, b.y1, b.x2, b.y2
        # x - x == 0 only for finite x (inf - inf and nan - nan are nan): one cheap test for all four
        if (x1 - x1) + (y1 - y1) + (x2 - x2) + (y2 - y2) != 0 or (
                (b.confidence is not None and not math.isfinite(b.confidence))
                or (b.box_quality is not None and not math.isfinite(b.box_quality))):
            _note(out, side, i, b, "rejected", "has a coordinate or score that is not a finite number")
            return None
        inside = 0 <= x1 <= w and 0 <= y1 <= h and 0 <= x2 <= w and 0 <= y2 <= h
        if not inside:
            x1, y1 = min(max(x1, 0.0), w), min(max(y1, 0.0), h)
            x2, y2 = min(max(x2, 0.0), w), min(max(y2, 0.0), h)
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            _note(out, side, i, b, "rejected", f"has no area inside the {w}x{h} image")
            return None
        if inside and main == b.name:
            return b  # unchanged: the parsed box serves as is (nothing mutates boxes after import)
        if not inside:
            _note(out, side, i, b, "clipped", f"reaches outside the {w}x{h} image")
        return Box(x1, y1, x2, y2, main, b.difficult, b.truncated, b.pose, b.confidence, b.box_quality, b.tags)

    def store(self, item: Item) -> Stored:
        """Phase 1: read, verify by structure, hash and hand one image to the writer."""
        rel, ref = item
        st = Stored(rel, f"{self.images_dir}/{rel}")
        try:
            data = self.tree.read(ref)
            st.info = inspect_image(data, self.limits.max_image_pixels, where=st.shown)
        except BadInput as exc:
            st.skip_reason = exc.message
            return st
        except OSError as exc:
            st.skip_reason = f"unreadable ({exc.strerror or exc})"
            return st
        st.sha1 = hashlib.sha1(data).hexdigest()
        st.size = len(data)
        st.created = self.writer.put(st.sha1, data)
        if st.created is not None:
            self.created.append(st.created)
        return st

    def annotate(self, st: Stored, gt_raw: Raw | None, pred_raw: Raw | None, skip: str | None) -> _Outcome:
        """Phase 2: the image's annotations checked against its size; the record."""
        out = _Outcome(rel=st.shown, skip_reason=skip or st.skip_reason)
        if out.skip_reason is not None:
            return out
        info = st.info
        gt = self._annotation(gt_raw, "gt", st.rel, info, out)
        pred = self._annotation(pred_raw, "pred", st.rel, info, out)
        given = gt.image_quality if gt is not None else None
        # YMIR's <image_quality> is kept when it is a score in [0, 1]; otherwise the score is computed
        # from the pixels when something first needs it (hub.datasets.quality), not here
        quality = given if given is not None and 0.0 <= given <= 1.0 else None
        out.record = AssetRecord(st.sha1, info.format, info.width, info.height, st.size, st.rel, quality, gt, pred)
        return out


def _note(out: _Outcome, side: str, i: int, b: Box, action: str, why: str) -> None:
    coords = f"({b.x1:g}, {b.y1:g}, {b.x2:g}, {b.y2:g})"
    out.fixed.append({"file": out.rel, "set": side, "box": i + 1, "action": action,
                      "reason": f"box {coords} of {b.name!r} {why}"})


def _annotations_of(rel: str, gt: SideAnnotations | None,
                    pred: SideAnnotations | None) -> tuple[Raw | None, Raw | None, str | None]:
    """An image's matched annotations, or why it must be skipped (an unusable annotation file)."""
    key = image_key(rel)
    raws: list[Raw | None] = []
    skip = None
    for side in (gt, pred):
        k = side.lookup(key) if side is not None else None
        if k is not None and k in side.bad:
            skip = skip or f"its annotation {side.files[k]} is unusable: {side.bad[k]}"
        raws.append(side.anns.get(k) if k is not None else None)
    return raws[0], raws[1], skip


def _class_map(sides: list[SideAnnotations], resolve_class: Callable[[str], str | None], unknown: str,
               report: IngestReport) -> dict[str, str | None]:
    raw_names = {n for side in sides for n in side.names()}
    mapping: dict[str, str | None] = {}
    unknown_names: set[str] = set()
    for raw in raw_names:
        norm = normalize(raw)
        if not norm:
            raise BadInput("an annotation has an empty class name")
        main = resolve_class(norm)
        if main is None:
            unknown_names.add(norm)
            main = norm if unknown == "add" else None
        mapping[raw] = main
    if unknown_names and unknown == "stop":
        raise UnknownClasses(sorted(unknown_names), where="the dataset's annotations")
    if unknown == "add":
        report.added_classes = sorted(unknown_names)
    return mapping


def ingest_dir(
    root: Path,
    *,
    assets_dir: Path,
    resolve_class: Callable[[str], str | None],
    unknown: str = "stop",
    limits: Limits | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> IngestResult:
    """Import the dataset folder ``root`` into ``assets_dir`` (see the module docstring).

    ``resolve_class(name)`` gets a lower-cased, trimmed name and returns its main class name or
    None; ``unknown`` is ``stop`` | ``ignore`` | ``add``. ``progress(done, total)`` is called
    every 2% of the images. ``workers`` threads share the image work (default: one per core).
    Raises :class:`BadInput`, :class:`UnknownClasses`, :class:`TooLarge`.
    """
    return ingest_tree(DirTree(Path(root)), assets_dir=assets_dir, resolve_class=resolve_class, unknown=unknown,
                       limits=limits, progress=progress, workers=workers)


def ingest_source(
    source: Source,
    *,
    sharing_dir: Path,
    tmp_dir: Path,
    assets_dir: Path,
    resolve_class: Callable[[str], str | None],
    unknown: str = "stop",
    limits: Limits | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> IngestResult:
    """``open_source`` + ``ingest_dir`` in one call, reading archives in place (no extraction).

    Same checks, limits, errors and result as the two-step form; faster (no temporary copy of every
    file) and needs no temporary disk space for zips. ``tmp_dir`` is only used for URL downloads.
    """
    limits = limits or Limits()
    with open_tree(source, sharing_dir=sharing_dir, tmp_dir=tmp_dir, limits=limits) as tree:
        return ingest_tree(tree, assets_dir=assets_dir, resolve_class=resolve_class, unknown=unknown,
                           limits=limits, progress=progress, workers=workers)


def ingest_tree(
    tree: FileTree,
    *,
    assets_dir: Path,
    resolve_class: Callable[[str], str | None],
    unknown: str = "stop",
    limits: Limits | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> IngestResult:
    """The engine behind :func:`ingest_dir` and :func:`ingest_source`, on a listed file tree."""
    if unknown not in UNKNOWN_STRATEGIES:
        raise BadInput(f"unknown-class strategy {unknown!r} is not one of {', '.join(UNKNOWN_STRATEGIES)}")
    limits = limits or Limits()
    workers = workers or default_workers()
    layout = find_layout(tree)
    if len(layout.images) > limits.max_files:
        raise TooLarge(f"{len(layout.images)} images exceed the limit of {limits.max_files} files")
    report = IngestReport(format=layout.format, skipped=list(layout.skipped))
    total = len(layout.images)
    pending: list[PendingSide] = []
    image_workers: ImageWorkers | None = None
    writer: InlineWriter | ProcessWriter | None = None
    run: _Ingest | None = None
    try:
        # big VOC/YOLO sets are parsed by worker processes while this thread stores the images
        gt_pending = (start_side(layout.gt, tree, "gt", workers=1)
                      if layout.gt and layout.gt.format != "none" else None)
        pending += [gt_pending] if gt_pending else []
        pred_pending = start_side(layout.pred, tree, "pred", workers=1) if layout.pred is not None else None
        pending += [pred_pending] if pred_pending else []
        # big imports: worker processes verify, hash and store the images while this thread parses
        image_workers = image_workers_for(tree, layout, Path(assets_dir), limits)
        writer = InlineWriter(assets_dir) if image_workers is not None else writer_for(Path(assets_dir), total)
        run = _Ingest(tree, layout.images_dir, writer, {}, limits)
        stored = None
        if image_workers is None and any(p.in_background for p in pending):
            stored = store_images(run, layout, workers, progress)
        # parsed inline, the annotations come first: unknown classes stop the import before any
        # image is stored; parsed in the background, what was stored is removed again
        gt = gt_pending.finish() if gt_pending else None
        pred = pred_pending.finish(gt) if pred_pending else None
        if pred is not None:
            report.pred_meta = pred.meta
        for part in (layout.gt, layout.pred):
            for rel in part.others if part else []:
                report.skipped.append({"file": part.where(rel),
                                       "reason": f"not a {part.format} annotation file"
                                       if part.format != "none" else "no annotation format recognised"})
        sides = [s for s in (gt, pred) if s is not None]
        run.class_map = _class_map(sides, resolve_class, unknown, report)
        report.skipped.extend(orphans(sides, layout))
        if stored is None:
            stored = (stored_by_workers(run, image_workers, layout, progress) if image_workers is not None
                      else store_images(run, layout, workers, progress))
        seen: dict[str, str] = {}
        assets: list[AssetRecord] = []
        boxes, pred_boxes, ignored = Counter(), Counter(), Counter()
        for st in stored:
            out = run.annotate(st, *_annotations_of(st.rel, gt, pred))
            _collect(out, report, seen, assets, boxes, pred_boxes, ignored)
        existed = set(writer.close())  # every file is on disk from here on
    except BaseException:
        for side in pending:
            side.close()
        if writer is not None:
            writer.abort()  # no write may land after the clean-up
        lost = list(run.created) if run is not None else []
        if image_workers is not None:
            image_workers.stop()
            lost += image_workers.created()
        _remove(dict.fromkeys(lost))
        raise
    if progress is not None and total == 0:
        progress(0, 0)
    report.images = len(assets)
    report.boxes_per_class = dict(sorted(boxes.items()))
    report.pred_boxes_per_class = dict(sorted(pred_boxes.items()))
    report.ignored_boxes = dict(sorted(ignored.items()))
    # files stored for images skipped afterwards (an unusable annotation) are not kept, unless an
    # identical image was imported; two threads may both report one new file
    kept = {asset_path_str(assets_dir, a.sha1) for a in assets}
    created = [p for p in dict.fromkeys(run.created) if p not in existed]
    _remove([p for p in created if p not in kept])
    created = [p for p in created if p in kept]
    log.info("ingested %d images (%d skipped, %d duplicates, %d new files) from %s",
             report.images, len(report.skipped), report.duplicates, len(created), tree.label)
    return IngestResult(assets=assets, report=report, created_files=created)


def _collect(out: _Outcome, report: IngestReport, seen: dict[str, str], assets: list[AssetRecord],
             boxes: Counter, pred_boxes: Counter, ignored: Counter) -> None:
    """Fold one image's outcome into the report (in image order: the first of identical images wins)."""
    report.fixed.extend(out.fixed)
    ignored.update(out.ignored)
    rec = out.record
    if out.skip_reason is not None:
        report.skipped.append({"file": out.rel, "reason": out.skip_reason})
    elif rec.sha1 in seen:
        report.duplicates += 1
        report.skipped.append({"file": out.rel, "reason": f"duplicate of {seen[rec.sha1]}"})
    else:
        seen[rec.sha1] = out.rel
        assets.append(rec)
        boxes.update(b.name for b in (rec.gt.boxes if rec.gt else ()))
        pred_boxes.update(b.name for b in (rec.pred.boxes if rec.pred else ()))


def _remove(paths: Iterable[str]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:  # sent to the writer process, never written
            pass
        except OSError:
            log.warning("could not remove %s after a failed import", p)
