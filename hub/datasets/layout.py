"""Find a dataset's parts in an extracted folder and decide its annotation format.

Accepted (at the root, or inside one top folder; folder names are case-insensitive)::

    images/ | JPEGImages/          the images (sub-folders allowed)
    gt/ | annotations/ | labels/   ground truth: VOC *.xml, or coco-annotations.json (COCO),
                                   or YOLO *.txt with classes.txt | obj.names | data.yaml
                                   (in gt/ or at the dataset root)
    pred/ | predictions/           optional predictions in the same formats, plus meta.yaml

Files are listed without following symlinks out of the dataset: a symlink whose target lies
outside the dataset folder is reported as skipped, never read. Annotations are matched to images
by relative path without extension (``gt/a/b.xml`` <-> ``images/a/b.jpg``), falling back to the
bare file stem when that stem is unique; COCO by ``file_name`` the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from detkit.annotations import ImageAnnotation
from detkit.errors import BadInput
from detkit.io.coco import CocoFile, read_coco, read_coco_predictions
from detkit.io.voc import parse_voc
from detkit.io.yolo import YoloRow, parse_yolo, read_class_names

IMAGES_DIRS = ("images", "jpegimages")
GT_DIRS = ("gt", "annotations", "labels")
PRED_DIRS = ("pred", "predictions")
COCO_FILE = "coco-annotations.json"
YOLO_NAMES = ("classes.txt", "obj.names", "data.yaml", "data.yml")
IGNORED = ("__MACOSX",)


@dataclass
class Part:
    """The annotation files of one side (gt or pred) and their format."""

    dir: Path
    format: str  # "voc" | "coco" | "yolo" | "none"
    files: dict[str, Path] = field(default_factory=dict)  # relpath (posix, from dir) -> file
    coco_file: Path | None = None
    names_file: Path | None = None
    meta_file: Path | None = None
    others: list[str] = field(default_factory=list)  # relpaths that are not annotations


@dataclass
class Layout:
    """Where things are in one dataset folder."""

    base: Path  # the folder holding images/ (the root or its one top folder)
    images_dir: Path
    images: dict[str, Path]  # relpath (posix, from images_dir) -> file
    gt: Part | None
    pred: Part | None
    skipped: list[dict] = field(default_factory=list)

    @property
    def format(self) -> str:
        return self.gt.format if self.gt is not None and self.gt.format != "none" else "images"

    def rel(self, path: Path) -> str:
        """``path`` relative to the dataset base, for messages and reports."""
        return Path(os.path.relpath(path, self.base)).as_posix()


def _children(folder: Path) -> dict[str, Path]:
    """Sub-folders by lower-cased name (real folders only, no symlinks)."""
    out = {}
    with os.scandir(folder) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False) and e.name not in IGNORED and not e.name.startswith("."):
                out.setdefault(e.name.lower(), Path(e.path))
    return out


def _pick(children: dict[str, Path], names: tuple[str, ...]) -> Path | None:
    return next((children[n] for n in names if n in children), None)


def list_files(folder: Path, base: Path, skipped: list[dict]) -> dict[str, Path]:
    """All regular files under ``folder`` by posix relpath; symlinks leading outside ``base`` are skipped."""
    base_real = os.path.realpath(base)
    found: dict[str, Path] = {}
    stack = [(folder, "")]
    while stack:
        current, prefix = stack.pop()
        with os.scandir(current) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            rel = prefix + e.name
            if e.name.startswith(".") or e.name in IGNORED:
                continue
            if e.is_symlink():
                real = os.path.realpath(e.path)
                if os.path.commonpath([base_real, real]) != base_real:
                    skipped.append({"file": Path(os.path.relpath(e.path, base)).as_posix(),
                                    "reason": "symbolic link pointing outside the dataset"})
                    continue
                if os.path.isdir(real):
                    skipped.append({"file": Path(os.path.relpath(e.path, base)).as_posix(),
                                    "reason": "symbolic link to a folder is not followed"})
                    continue
                if os.path.isfile(real):
                    found[rel] = Path(e.path)
            elif e.is_dir(follow_symlinks=False):
                stack.append((Path(e.path), rel + "/"))
            elif e.is_file(follow_symlinks=False):
                found[rel] = Path(e.path)
    return dict(sorted(found.items()))


def _part(folder: Path, base: Path, skipped: list[dict], names_dirs: tuple[Path, ...]) -> Part:
    files = list_files(folder, base, skipped)
    lower = {rel.lower(): rel for rel in files}
    part = Part(dir=folder, format="none")
    if "meta.yaml" in lower:
        part.meta_file = files.pop(lower["meta.yaml"])
    if COCO_FILE in lower:
        part.format, part.coco_file = "coco", files.pop(lower[COCO_FILE])
    elif any(rel.lower().endswith(".xml") for rel in files):
        part.format = "voc"
    elif any(rel.lower().endswith(".txt") and rel.lower() not in YOLO_NAMES for rel in files):
        part.format = "yolo"
        for rel in YOLO_NAMES:
            if rel in lower:
                part.names_file = files.pop(lower[rel])
                break
        else:
            for d in names_dirs:
                hit = next((d / n for n in YOLO_NAMES if (d / n).is_file()), None)
                if hit is not None:
                    part.names_file = hit
                    break
        if part.names_file is None:
            raise BadInput(f"{folder.name}/: YOLO labels need class names (classes.txt, obj.names or data.yaml)")
    suffix = {"voc": ".xml", "yolo": ".txt"}.get(part.format)
    for rel in list(files):
        if suffix is None or not rel.lower().endswith(suffix):
            part.others.append(rel)
            del files[rel]
    part.files = files
    return part


def find_layout(root: Path) -> Layout:
    """Locate images/gt/pred in ``root`` (or its one top folder). BadInput if there is no images folder."""
    root = Path(root)
    children = _children(root)
    images_dir = _pick(children, IMAGES_DIRS)
    base = root
    if images_dir is None:
        if not children and not any(os.scandir(root)):
            raise BadInput("the dataset is empty")
        if len(children) == 1:
            base = next(iter(children.values()))
            children = _children(base)
            images_dir = _pick(children, IMAGES_DIRS)
    if images_dir is None:
        raise BadInput(
            "no images/ (or JPEGImages/) folder at the dataset's root or inside its one top folder"
        )
    skipped: list[dict] = []
    images = list_files(images_dir, base, skipped)
    gt_dir, pred_dir = _pick(children, GT_DIRS), _pick(children, PRED_DIRS)
    gt = _part(gt_dir, base, skipped, (base,)) if gt_dir is not None else None
    names_dirs = (base,) if gt is None or gt.names_file is None else (gt.names_file.parent, base)
    pred = _part(pred_dir, base, skipped, names_dirs) if pred_dir is not None else None
    return Layout(base=base, images_dir=images_dir, images=images, gt=gt, pred=pred, skipped=skipped)


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
        return self.by_stem.get(PurePosixPath(image_key).name)

    def names(self) -> Iterator[str]:
        """Every class name used by a box (raw, as written in the files)."""
        for raw in self.anns.values():
            for b in raw if isinstance(raw, list) else raw.boxes:
                yield b.name


def image_key(rel: str) -> str:
    """The matching key of a relative path: posix, without its extension."""
    p = PurePosixPath(rel)
    return str(p.with_suffix("")) if p.suffix else str(p)


def _coco_key(file_name: str) -> str:
    parts = [p for p in file_name.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) > 1 and parts[0].lower() in IMAGES_DIRS:
        parts = parts[1:]
    return image_key("/".join(parts))


def _read(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _parallel(fn: Callable, items: Iterable, workers: int) -> list:
    if workers <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items, chunksize=1))


def _parse_files(part: Part, layout: Layout, parse: Callable[[bytes, str], Raw], side: SideAnnotations,
                 workers: int) -> None:
    def one(item: tuple[str, Path]) -> tuple[str, str, Raw | str]:
        rel, path = item
        where = layout.rel(path)
        try:
            return rel, where, parse(_read(path), where)
        except BadInput as exc:
            return rel, where, exc.message
        except OSError as exc:
            return rel, where, f"{where}: unreadable ({exc})"

    for rel, where, result in _parallel(one, part.files.items(), workers):
        key = image_key(rel)
        side.files[key] = where
        if isinstance(result, str):
            side.bad[key] = result
        else:
            side.anns[key] = result


def _read_meta(path: Path, where: str) -> dict:
    if path.stat().st_size > MAX_META_BYTES:
        raise BadInput(f"{where}: larger than {MAX_META_BYTES} bytes")
    try:
        doc = yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        raise BadInput(f"{where}: not valid YAML ({exc})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise BadInput(f"{where}: must be a mapping (model name, ...)")
    return doc


def read_side(part: Part, layout: Layout, name: str, gt: SideAnnotations | None = None,
              workers: int = 1) -> SideAnnotations:
    """Parse every annotation file of ``part``. Per-file problems land in ``bad``; a broken
    single-file annotation (COCO JSON, YOLO class names, meta.yaml) raises :class:`BadInput`."""
    side = SideAnnotations(name=name)
    if part.meta_file is not None:
        side.meta = _read_meta(part.meta_file, layout.rel(part.meta_file))
    if part.format == "voc":
        _parse_files(part, layout, parse_voc, side, workers)
    elif part.format == "yolo":
        names_where = layout.rel(part.names_file)
        names = read_class_names(_read(part.names_file), names_where)
        _parse_files(part, layout, lambda data, where: parse_yolo(data, names, where), side, workers)
    elif part.format == "coco":
        where = layout.rel(part.coco_file)
        data = _read(part.coco_file)
        coco = read_coco(data, where) if name == "gt" else read_coco_predictions(data, gt and gt.coco, where)
        side.coco = coco
        for file_name, ann in coco.annotations.items():
            key = _coco_key(file_name)
            side.anns[key] = ann
            side.files[key] = where
    stems: dict[str, list[str]] = {}
    for key in list(side.anns) + list(side.bad):
        stems.setdefault(PurePosixPath(key).name, []).append(key)
    side.by_stem = {stem: keys[0] for stem, keys in stems.items() if len(keys) == 1}
    return side
