"""The dataset ingest engine: a folder of images + annotations in, content-addressed assets and
records out. It touches only the filesystem; the hub stores the result in SQLite.

Steps of :func:`ingest_dir`:

1. find the layout and parse every annotation file (:mod:`hub.datasets.layout`);
2. resolve class names (``resolve_class``); with ``unknown="stop"`` raise
   :class:`UnknownClasses` listing every unknown name *before* any asset file is written;
3. per image, in worker threads: read, verify by content (:mod:`detkit.imaging`), sha1, store
   under ``assets_dir/<sha1[-2:]>/<sha1>`` (written to a temp name, then linked into place
   atomically; an existing file is never rewritten), compute the quality score, clip boxes to the
   image (zero-area boxes rejected; both listed in ``report.fixed``);
4. keep the first of identical images, count the rest as duplicates.

If anything fails midway, every asset file this call created is deleted again.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput, TooLarge, UnknownClasses
from detkit.imaging import DecodedImage, decode_image
from detkit.io.yolo import rows_to_annotation
from detkit.quality import image_quality
from hub.datasets.layout import Layout, Raw, SideAnnotations, find_layout, image_key, read_side
from hub.datasets.sources import Limits, Source, open_source

__all__ = [
    "AssetRecord", "IngestReport", "IngestResult", "Limits", "Source", "ingest_dir", "open_source",
    "asset_path", "store_asset",
]

log = logging.getLogger(__name__)

UNKNOWN_STRATEGIES = ("stop", "ignore", "add")
_tmp_counter = itertools.count()


@dataclass
class AssetRecord:
    """One imported image: its content address, verified format/size, quality and annotations."""

    sha1: str
    format: str  # "jpeg" | "png" | "bmp", decided by content
    width: int
    height: int
    size_bytes: int
    filename: str  # original path relative to the images folder
    image_quality: float  # from the VOC <image_quality> when given, else detkit.quality
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
    created_files: list[Path]  # asset files this call newly created


def normalize(name: str) -> str:
    """Class names are matched lower-cased and trimmed."""
    return name.strip().lower()


def asset_path(assets_dir: Path, sha1: str) -> Path:
    """Where an asset with this sha1 lives."""
    return Path(assets_dir) / sha1[-2:] / sha1


def store_asset(assets_dir: Path, sha1: str, data: bytes) -> Path | None:
    """Store ``data`` at :func:`asset_path` atomically; the path if this call created it, else None."""
    final = asset_path(assets_dir, sha1)
    if final.exists():
        return None
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{sha1}.{os.getpid()}.{next(_tmp_counter)}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        try:
            os.link(tmp, final)  # atomic and never replaces an existing asset
        except FileExistsError:
            return None
        except OSError:  # filesystems without hard links
            if final.exists():
                return None
            os.replace(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class _Outcome:
    rel: str  # relative to the dataset base, for the report
    record: AssetRecord | None = None
    skip_reason: str | None = None
    fixed: list[dict] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)


class _Ingest:
    """One ingest run's state (shared read-only by the workers, except ``created``)."""

    def __init__(self, layout: Layout, assets_dir: Path, class_map: dict[str, str | None], limits: Limits,
                 gt: SideAnnotations | None, pred: SideAnnotations | None):
        self.layout, self.assets_dir, self.class_map, self.limits = layout, assets_dir, class_map, limits
        self.gt, self.pred = gt, pred
        self.created: list[Path] = []
        self._lock = threading.Lock()

    def _annotation(self, side: SideAnnotations | None, key: str | None, rel: str, dec: DecodedImage,
                    out: _Outcome) -> ImageAnnotation | None:
        if side is None or key is None or key not in side.anns:
            return None
        raw: Raw = side.anns[key]
        if isinstance(raw, list):
            ann = rows_to_annotation(raw, dec.width, dec.height)
        else:
            ann = replace(raw, tags=dict(raw.tags))
        ann.filename, ann.width, ann.height = rel, dec.width, dec.height
        ann.boxes = [b for b in (self._fix(b, i, dec, side.name, out) for i, b in enumerate(ann.boxes)) if b]
        return ann

    def _fix(self, b: Box, i: int, dec: DecodedImage, side: str, out: _Outcome) -> Box | None:
        main = self.class_map[b.name]
        if main is None:
            out.ignored[normalize(b.name)] += 1
            return None
        w, h = dec.width, dec.height
        x1, y1 = min(max(b.x1, 0.0), w), min(max(b.y1, 0.0), h)
        x2, y2 = min(max(b.x2, 0.0), w), min(max(b.y2, 0.0), h)
        where = {"file": out.rel, "set": side, "box": i + 1}
        coords = f"({b.x1:g}, {b.y1:g}, {b.x2:g}, {b.y2:g})"
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            out.fixed.append({**where, "action": "rejected",
                              "reason": f"box {coords} of {b.name!r} has no area inside the {w}x{h} image"})
            return None
        if (x1, y1, x2, y2) != (b.x1, b.y1, b.x2, b.y2):
            out.fixed.append({**where, "action": "clipped",
                              "reason": f"box {coords} of {b.name!r} reaches outside the {w}x{h} image"})
        return replace(b, x1=x1, y1=y1, x2=x2, y2=y2, name=main, tags=dict(b.tags))

    def process(self, item: tuple[str, Path]) -> _Outcome:
        """Verify, store and annotate one image (runs in a worker thread)."""
        rel, path = item
        out = _Outcome(rel=self.layout.rel(path))
        key = image_key(rel)
        gt_key = self.gt.lookup(key) if self.gt else None
        pred_key = self.pred.lookup(key) if self.pred else None
        for side, k in ((self.gt, gt_key), (self.pred, pred_key)):
            if side is not None and k in side.bad:
                out.skip_reason = f"its annotation {side.files[k]} is unusable: {side.bad[k]}"
                return out
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            dec = decode_image(data, self.limits.max_image_pixels, where=out.rel)
        except BadInput as exc:
            out.skip_reason = exc.message
            return out
        except OSError as exc:
            out.skip_reason = f"unreadable ({exc.strerror or exc})"
            return out
        sha1 = hashlib.sha1(data).hexdigest()
        created = store_asset(self.assets_dir, sha1, data)
        if created is not None:
            with self._lock:
                self.created.append(created)
        gt = self._annotation(self.gt, gt_key, rel, dec, out)
        pred = self._annotation(self.pred, pred_key, rel, dec, out)
        quality = gt.image_quality if gt is not None and gt.image_quality is not None else image_quality(dec.grey)
        out.record = AssetRecord(sha1, dec.format, dec.width, dec.height, len(data), rel, quality, gt, pred)
        return out


def _ordered(pool: ThreadPoolExecutor, fn: Callable, items: Iterable, window: int) -> Iterator:
    """``pool.map`` with at most ``window`` tasks in flight (bounded memory on huge imports)."""
    pending: deque[Future] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


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


def _default_workers() -> int:
    return min(4, (os.cpu_count() or 1) + 1)


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
    every 2% of the images. Raises :class:`BadInput`, :class:`UnknownClasses`, :class:`TooLarge`.
    """
    if unknown not in UNKNOWN_STRATEGIES:
        raise BadInput(f"unknown-class strategy {unknown!r} is not one of {', '.join(UNKNOWN_STRATEGIES)}")
    limits = limits or Limits()
    workers = workers or _default_workers()
    layout = find_layout(Path(root))
    if len(layout.images) > limits.max_files:
        raise TooLarge(f"{len(layout.images)} images exceed the limit of {limits.max_files} files")
    report = IngestReport(format=layout.format, skipped=list(layout.skipped))
    gt = read_side(layout.gt, layout, "gt", workers=workers) if layout.gt and layout.gt.format != "none" else None
    pred = None
    if layout.pred is not None:
        pred = read_side(layout.pred, layout, "pred", gt=gt, workers=workers)
        report.pred_meta = pred.meta if pred.meta is not None else None
    for part in (layout.gt, layout.pred):
        for rel in part.others if part else []:
            report.skipped.append({"file": layout.rel(part.dir / rel),
                                   "reason": f"not a {part.format} annotation file"
                                   if part.format != "none" else "no annotation format recognised"})
    sides = [s for s in (gt, pred) if s is not None]
    class_map = _class_map(sides, resolve_class, unknown, report)
    _report_orphans(sides, layout, report)

    run = _Ingest(layout, Path(assets_dir), class_map, limits, gt, pred)
    total = len(layout.images)
    step = max(1, total // 50)
    seen: dict[str, str] = {}
    assets: list[AssetRecord] = []
    boxes, pred_boxes, ignored = Counter(), Counter(), Counter()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="ingest")
    try:
        for done, out in enumerate(_ordered(pool, run.process, layout.images.items(), workers * 16), start=1):
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
            if progress is not None and (done % step == 0 or done == total):
                progress(done, total)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        _remove(run.created)
        raise
    pool.shutdown(wait=True)
    if progress is not None and total == 0:
        progress(0, 0)
    report.images = len(assets)
    report.boxes_per_class = dict(sorted(boxes.items()))
    report.pred_boxes_per_class = dict(sorted(pred_boxes.items()))
    report.ignored_boxes = dict(sorted(ignored.items()))
    log.info("ingested %d images (%d skipped, %d duplicates, %d new files) from %s",
             report.images, len(report.skipped), report.duplicates, len(run.created), root)
    return IngestResult(assets=assets, report=report, created_files=list(run.created))


def _report_orphans(sides: list[SideAnnotations], layout: Layout, report: IngestReport) -> None:
    """Annotations with no image: listed as skipped (their boxes cannot be imported)."""
    keys = {image_key(rel) for rel in layout.images}
    for side in sides:
        matched = {side.lookup(k) for k in keys}
        for key in list(side.anns) + list(side.bad):
            if key not in matched:
                reason = side.bad.get(key) or f"no image for {key!r} in {layout.rel(layout.images_dir)}/"
                report.skipped.append({"file": side.files[key], "reason": reason})


def _remove(paths: list[Path]) -> None:
    for p in paths:
        try:
            p.unlink()
        except OSError:
            log.warning("could not remove %s after a failed import", p)
