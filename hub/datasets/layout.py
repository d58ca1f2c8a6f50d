"""Find a dataset's parts in an extracted folder and decide its annotation format.

Accepted (at the root, or inside one top folder; folder names are case-insensitive)::

    images/ | JPEGImages/          the images (sub-folders allowed)
    gt/ | annotations/ | labels/   ground truth: VOC *.xml, or coco-annotations.json (COCO),
                                   or YOLO *.txt with classes.txt | obj.names | data.yaml
                                   (in gt/ or at the dataset root)
    pred/ | predictions/           optional predictions in the same formats, plus meta.yaml

The dataset is seen as a flat listing of relative paths (:class:`~hub.datasets.sources.DirTree`
for a folder, where symlinks leading out are skipped and never read, or
:class:`~hub.datasets.sources.ZipTree` for an archive read in place). Annotations are matched to images
by relative path without extension (``gt/a/b.xml`` <-> ``images/a/b.jpg``), falling back to the
bare file stem when that stem is unique; COCO by ``file_name`` the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import yaml

from detkit.annotations import ImageAnnotation
from detkit.errors import BadInput
from detkit.io.coco import CocoFile, read_coco, read_coco_predictions
from detkit.io.yolo import YoloRow, read_class_names
from hub.datasets.parse_workers import PARALLEL_MIN, ParseWorkers, parse_inline
from hub.datasets.sources import FileTree

IMAGES_DIRS = ("images", "jpegimages")
GT_DIRS = ("gt", "annotations", "labels")
PRED_DIRS = ("pred", "predictions")
COCO_FILE = "coco-annotations.json"
YOLO_NAMES = ("classes.txt", "obj.names", "data.yaml", "data.yml")
IGNORED = ("__MACOSX",)


@dataclass
class Part:
    """The annotation files of one side (gt or pred) and their format."""

    dir: str  # display path relative to the dataset base, e.g. "gt"
    format: str  # "voc" | "coco" | "yolo" | "none"
    files: dict[str, object] = field(default_factory=dict)  # relpath (from dir) -> tree ref
    coco_file: str | None = None  # relpath (from dir)
    names_file: tuple[str, object] | None = None  # (display path, ref) of the YOLO class names
    meta_file: str | None = None  # relpath (from dir)
    refs: dict[str, object] = field(default_factory=dict)  # every file of the part (relpath -> ref)
    others: list[str] = field(default_factory=list)  # relpaths that are not annotations

    def where(self, rel: str) -> str:
        return f"{self.dir}/{rel}"


@dataclass
class Layout:
    """Where things are in one dataset (a folder or an archive, as a flat listing)."""

    tree: FileTree
    base: str  # "" or "<top folder>/"
    images_dir: str  # its real name, e.g. "JPEGImages"
    images: dict[str, object]  # relpath (from images_dir) -> tree ref
    gt: Part | None
    pred: Part | None
    skipped: list[dict] = field(default_factory=list)

    @property
    def format(self) -> str:
        return self.gt.format if self.gt is not None and self.gt.format != "none" else "images"


def _dirs(files: dict[str, object], base: str) -> dict[str, str]:
    """First-level folder names under ``base``, lower-cased -> real name."""
    out: dict[str, str] = {}
    for rel in files:
        if rel.startswith(base):
            head, sep, _ = rel[len(base):].partition("/")
            if sep:
                out.setdefault(head.lower(), head)
    return out


def _under(files: dict[str, object], prefix: str) -> dict[str, object]:
    return {rel[len(prefix):]: ref for rel, ref in files.items() if rel.startswith(prefix)}


def _pick(children: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((children[n] for n in names if n in children), None)


def _part(name: str, files: dict[str, object], base: str, names_from: list[tuple[str, dict]]) -> Part:
    refs = _under(files, f"{base}{name}/")
    lower = {rel.lower(): rel for rel in refs}
    part = Part(dir=name, format="none", refs=refs)
    todo = dict(refs)
    if "meta.yaml" in lower:
        part.meta_file = lower["meta.yaml"]
        del todo[part.meta_file]
    if COCO_FILE in lower:
        part.format, part.coco_file = "coco", lower[COCO_FILE]
        del todo[part.coco_file]
    elif any(rel.lower().endswith(".xml") for rel in todo):
        part.format = "voc"
    elif any(rel.lower().endswith(".txt") and rel.lower() not in YOLO_NAMES for rel in todo):
        part.format = "yolo"
        for prefix, listing in [(f"{name}/", todo), *names_from]:
            low = {rel.lower(): rel for rel in listing if "/" not in rel}
            hit = next((low[n] for n in YOLO_NAMES if n in low), None)
            if hit is not None:
                part.names_file = (prefix + hit, listing[hit])
                if listing is todo:
                    del todo[hit]
                break
        if part.names_file is None:
            raise BadInput(f"{name}/: YOLO labels need class names (classes.txt, obj.names or data.yaml)")
    suffix = {"voc": ".xml", "yolo": ".txt"}.get(part.format)
    part.files = {rel: ref for rel, ref in todo.items() if suffix is not None and rel.lower().endswith(suffix)}
    part.others = [rel for rel in todo if rel not in part.files]
    return part


def find_layout(tree: FileTree) -> Layout:
    """Locate images/gt/pred in ``tree`` (or its one top folder). BadInput if there is no images folder."""
    files = tree.files
    if not files:
        raise BadInput("the dataset is empty")
    base = ""
    children = _dirs(files, base)
    images_dir = _pick(children, IMAGES_DIRS)
    if images_dir is None and len(children) == 1:
        base = next(iter(children.values())) + "/"
        children = _dirs(files, base)
        images_dir = _pick(children, IMAGES_DIRS)
    if images_dir is None:
        raise BadInput("no images/ (or JPEGImages/) folder at the dataset's root or inside its one top folder")
    top_files = {rel: ref for rel, ref in _under(files, base).items() if "/" not in rel}
    gt_dir, pred_dir = _pick(children, GT_DIRS), _pick(children, PRED_DIRS)
    gt = _part(gt_dir, files, base, [("", top_files)]) if gt_dir else None
    names_from = [("", top_files)]
    if gt is not None and gt.names_file is not None and gt.names_file[0].startswith(f"{gt.dir}/"):
        names_from.insert(0, (f"{gt.dir}/", {gt.names_file[0][len(gt.dir) + 1:]: gt.names_file[1]}))
    pred = _part(pred_dir, files, base, names_from) if pred_dir else None
    skipped = [{**s, "file": s["file"][len(base):] if s["file"].startswith(base) else s["file"]}
               for s in tree.skipped]
    return Layout(tree=tree, base=base, images_dir=images_dir, images=_under(files, f"{base}{images_dir}/"),
                  gt=gt, pred=pred, skipped=skipped)


# --- reading one side's annotations -------------------------------------------------------------

MAX_META_BYTES = 1 << 20
Raw = ImageAnnotation | list[YoloRow]


@dataclass
class SideAnnotations:
    """Parsed annotations of one side (gt or pred), keyed like images (relpath without extension)."""

    name: str  # "gt" | "pred"
    anns: dict[str, Raw] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # key -> annotation file (for messages)
    bad: dict[str, str] = field(default_factory=dict)  # key -> why its annotation file is unusable
    by_stem: dict[str, str] = field(default_factory=dict)  # unique bare stem -> key
    meta: dict | None = None
    coco: CocoFile | None = None

    def lookup(self, image_key: str) -> str | None:
        """The annotation key for an image key (exact relpath match, else the unique bare stem)."""
        if image_key in self.anns or image_key in self.bad:
            return image_key
        return self.by_stem.get(image_key.rpartition("/")[2])

    def names(self) -> Iterator[str]:
        """Every class name used by a box (raw, as written in the files)."""
        for raw in self.anns.values():
            for b in raw if isinstance(raw, list) else raw.boxes:
                yield b.name


def image_key(rel: str) -> str:
    """The matching key of a relative path: posix, without its extension (``a/b.x.jpg`` -> ``a/b.x``)."""
    slash = rel.rfind("/")
    dot = rel.rfind(".")
    return rel[:dot] if dot > slash + 1 else rel


def _coco_key(file_name: str) -> str:
    parts = [p for p in file_name.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) > 1 and parts[0].lower() in IMAGES_DIRS:
        parts = parts[1:]
    return image_key("/".join(parts))


def _parallel(fn: Callable, items: Iterable, workers: int) -> list:
    if workers <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items, chunksize=16))


def _read_meta(data: bytes, where: str) -> dict:
    if len(data) > MAX_META_BYTES:
        raise BadInput(f"{where}: larger than {MAX_META_BYTES} bytes")
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise BadInput(f"{where}: not valid YAML ({exc})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise BadInput(f"{where}: must be a mapping (model name, ...)")
    return doc


#: worker processes parsing a big side's files while the import stores images. None on two cores
#: or fewer: there the workers' start-up and pickling cost more CPU than they free (10,000 VOC files
#: on 2 cores: 1.15-1.18 s with one or two workers vs 1.01-1.03 s inline, scripts/bench/import_voc.py)
PARSE_PROCESSES = 0 if (os.cpu_count() or 1) <= 2 else min(4, (os.cpu_count() or 1) - 2)


def read_side(part: Part, tree: FileTree, name: str, gt: SideAnnotations | None = None,
              workers: int = 1) -> SideAnnotations:
    """Parse every annotation file of ``part``. Per-file problems land in ``bad``; a broken
    single-file annotation (COCO JSON, YOLO class names, meta.yaml) raises :class:`BadInput`."""
    return start_side(part, tree, name, processes=0, workers=workers).finish(gt)


def start_side(part: Part, tree: FileTree, name: str, processes: int | None = None,
               workers: int = 1) -> PendingSide:
    """Begin reading ``part``: single files (meta.yaml, YOLO class names) now -- their errors
    raise here --, and with many VOC/YOLO files, their parsing in worker processes
    (:mod:`hub.datasets.parse_workers`) while the caller does other work; :meth:`PendingSide.finish`
    collects. ``processes`` defaults to one per core, at most two."""
    return PendingSide(part, tree, name, processes, workers)


class PendingSide:
    """One side's annotations being read (see :func:`start_side`)."""

    def __init__(self, part: Part, tree: FileTree, name: str, processes: int | None, workers: int):
        self.part, self.tree, self.workers = part, tree, workers
        self.side = SideAnnotations(name=name)
        self.names: list[str] | None = None
        self.pool: ParseWorkers | None = None
        if part.meta_file is not None:
            self.side.meta = _read_meta(tree.read(part.refs[part.meta_file]), part.where(part.meta_file))
        if part.format == "yolo":
            names_where, names_ref = part.names_file
            self.names = read_class_names(tree.read(names_ref), names_where)
        processes = PARSE_PROCESSES if processes is None else processes
        if part.format in ("voc", "yolo") and processes > 0 and len(part.files) >= PARALLEL_MIN:
            items = [(rel, part.where(rel), ref, tree.member_ref(ref)) for rel, ref in part.files.items()]
            self.pool = ParseWorkers(part.format, self.names, tree.label, items, processes, tree.read)

    @property
    def in_background(self) -> bool:
        """True when worker processes parse the files while the caller does other work."""
        return self.pool is not None

    def finish(self, gt: SideAnnotations | None = None) -> SideAnnotations:
        part, tree, side = self.part, self.tree, self.side
        if self.pool is not None:
            _fill(side, self.pool.results())
        elif part.format in ("voc", "yolo"):
            fmt, names = part.format, self.names
            _fill(side, _parallel(lambda item: parse_inline(fmt, names, item[0], part.where(item[0]),
                                                            lambda: tree.read(item[1])),
                                  part.files.items(), self.workers))
        elif part.format == "coco":
            where = part.where(part.coco_file)
            data = tree.read(part.refs[part.coco_file])
            coco = read_coco(data, where) if side.name == "gt" else read_coco_predictions(data, gt and gt.coco, where)
            side.coco = coco
            for file_name, ann in coco.annotations.items():
                key = _coco_key(file_name)
                side.anns[key] = ann
                side.files[key] = where
        stems: dict[str, list[str]] = {}
        for key in list(side.anns) + list(side.bad):
            stems.setdefault(key.rpartition("/")[2], []).append(key)
        side.by_stem = {stem: keys[0] for stem, keys in stems.items() if len(keys) == 1}
        return side

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def _fill(side: SideAnnotations, results) -> None:
    for rel, where, result in results:
        key = image_key(rel)
        side.files[key] = where
        if isinstance(result, str):
            side.bad[key] = result
        else:
            side.anns[key] = result


def orphans(sides: list[SideAnnotations], layout: Layout) -> list[dict]:
    """Annotation files with no image (their boxes cannot be imported), as skipped entries."""
    keys = {image_key(rel) for rel in layout.images}
    out = []
    for side in sides:
        matched = {side.lookup(k) for k in keys}
        for key in list(side.anns) + list(side.bad):
            if key not in matched:
                reason = side.bad.get(key) or f"no image for {key!r} in {layout.images_dir}/"
                out.append({"file": side.files[key], "reason": reason})
    return out
