"""Calibration and validation images for conversions: a folder or a YMIR-layout zip.

Accepted layouts (the hub passes dataset versions as either):

* a folder of images, with VOC ``.xml`` files beside them or in ``gt/``, ``annotations/`` or
  ``Annotations/`` (same stem as the image); images may sit in an ``images/`` sub-folder;
* a zip with ``images/*`` and ``gt/*.xml`` (or ``annotations/*.xml``) — what
  :func:`detkit.synth.write_sample_zip` and the hub's exports write.

Zip members are only read, never extracted, so hostile member names cannot escape anywhere.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from detkit.annotations import ImageAnnotation
from detkit.errors import BadInput, UnknownClasses
from detkit.io.voc import parse_voc
from detkit.runtime.base import to_pil

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
ANNOTATION_DIRS = ("gt", "annotations", "Annotations")
MAX_MEMBER_BYTES = 64 << 20  # a single image or xml larger than this in a zip is refused


@dataclass
class Sample:
    """One image (path or zip member) and its ground truth, if any."""

    name: str
    source: Path  # the file, or the zip it is in
    member: str = ""  # zip member name ("" for a plain file)
    annotation: ImageAnnotation | None = None

    def image(self) -> Image.Image:
        """The RGB image (read on demand: datasets are not held in memory)."""
        where = f"{self.source}:{self.member}" if self.member else str(self.source)
        if not self.member:
            return to_pil(self.source, where)
        with zipfile.ZipFile(self.source) as zf:
            return to_pil(zf.read(self.member), where)


@dataclass
class ImageSet:
    """Images (with optional VOC ground truth) for calibration or validation."""

    source: Path
    samples: list[Sample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    @property
    def annotated(self) -> bool:
        return any(s.annotation is not None for s in self.samples)

    def class_names(self) -> set[str]:
        return {b.name for s in self.samples if s.annotation for b in s.annotation.boxes}

    def check_classes(self, model_classes: list[str]) -> None:
        """Raise :class:`UnknownClasses` naming ground-truth classes the model does not know."""
        unknown = self.class_names() - set(model_classes)
        if unknown:
            raise UnknownClasses(sorted(unknown), f"{self.source} (model classes: {', '.join(model_classes)})")

    def ground_truth(self, model_classes: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per image: boxes (K, 4) float32 xyxy and class ids (K,) int64 in the model's class order."""
        self.check_classes(model_classes)
        index = {n: i for i, n in enumerate(model_classes)}
        boxes, classes = [], []
        for s in self.samples:
            bb = s.annotation.boxes if s.annotation else []
            boxes.append(np.array([[b.x1, b.y1, b.x2, b.y2] for b in bb], np.float32).reshape(-1, 4))
            classes.append(np.array([index[b.name] for b in bb], np.int64))
        return boxes, classes

    def take(self, limit: int | None) -> ImageSet:
        """The first ``limit`` samples (all when ``None``)."""
        return ImageSet(self.source, self.samples[:limit] if limit else list(self.samples))


def _is_image(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def _from_folder(root: Path) -> list[Sample]:
    base = root / "images" if (root / "images").is_dir() else root
    files = sorted(p for p in base.rglob("*") if p.is_file() and _is_image(p.name))
    samples = []
    for p in files:
        ann = None
        candidates = [p.with_suffix(".xml")] + [root / d / (p.stem + ".xml") for d in ANNOTATION_DIRS]
        xml = next((c for c in candidates if c.is_file()), None)
        if xml is not None:
            ann = parse_voc(xml.read_bytes(), str(xml))
        samples.append(Sample(name=str(p.relative_to(root)), source=p, annotation=ann))
    return samples


def _from_zip(path: Path) -> list[Sample]:
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
        xmls = {}
        for name, info in infos.items():
            pp = PurePosixPath(name)
            if pp.suffix.lower() == ".xml" and (len(pp.parts) == 1 or pp.parts[-2] in ANNOTATION_DIRS):
                xmls[pp.stem] = info
        samples = []
        for name in sorted(n for n in infos if _is_image(n)):
            if infos[name].file_size > MAX_MEMBER_BYTES:
                raise BadInput(f"{path}:{name}: image larger than {MAX_MEMBER_BYTES} bytes")
            stem = PurePosixPath(name).stem
            ann = None
            if stem in xmls:
                info = xmls[stem]
                if info.file_size > MAX_MEMBER_BYTES:
                    raise BadInput(f"{path}:{info.filename}: annotation larger than {MAX_MEMBER_BYTES} bytes")
                ann = parse_voc(zf.read(info), f"{path}:{info.filename}")
            samples.append(Sample(name=name, source=path, member=name, annotation=ann))
    return samples


def load_images(path: str | Path, *, need_annotations: bool = False, limit: int | None = None) -> ImageSet:
    """Load an image folder or YMIR-layout zip; raise :class:`BadInput` naming it when unusable.

    ``need_annotations``: validation sets must have VOC ground truth for at least one image.
    """
    path = Path(path)
    if path.is_dir():
        samples = _from_folder(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        samples = _from_zip(path)
    elif path.is_file():
        raise BadInput(f"{path}: not a folder nor a zip of images")
    else:
        raise BadInput(f"{path}: no such folder or zip")
    if not samples:
        raise BadInput(f"{path}: no images found ({', '.join(IMAGE_SUFFIXES)}; in the folder, images/ or the zip)")
    if need_annotations and not any(s.annotation for s in samples):
        raise BadInput(f"{path}: no VOC annotations found (expected .xml beside the images or in gt/ or annotations/)")
    log.info("%s: %d images, %d annotated", path, len(samples), sum(s.annotation is not None for s in samples))
    return ImageSet(path, samples[:limit] if limit else samples)

