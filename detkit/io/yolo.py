"""YOLO (darknet) label files: one ``.txt`` per image, ``class cx cy w h [confidence]`` per line,
coordinates normalised to the image size; class names from ``classes.txt`` / ``obj.names`` (one per
line) or a ``data.yaml`` ``names`` list or ``{index: name}`` mapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import yaml

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput


@dataclass
class YoloRow:
    """One label line, still normalised (the image size is needed to make a :class:`Box`)."""

    name: str
    cx: float
    cy: float
    w: float
    h: float
    confidence: float | None = None


def read_class_names(data: bytes, filename: str) -> list[str]:
    """Class names from ``classes.txt``/``obj.names`` (lines) or ``data.yaml`` (``names``)."""
    if filename.endswith((".yaml", ".yml")):
        try:
            doc = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            raise BadInput(f"{filename}: not valid YAML ({exc})") from None
        names = doc.get("names") if isinstance(doc, dict) else None
        if isinstance(names, dict):
            try:
                order = sorted(names, key=int)
            except (TypeError, ValueError):
                raise BadInput(f"{filename}: 'names' keys must be class indices") from None
            if [int(k) for k in order] != list(range(len(order))):
                raise BadInput(f"{filename}: 'names' indices must be 0..{len(order) - 1}")
            names = [names[k] for k in order]
        if not isinstance(names, list) or not names:
            raise BadInput(f"{filename}: needs a non-empty 'names' list")
        return [str(n).strip() for n in names]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(f"{filename}: not UTF-8 text") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise BadInput(f"{filename}: no class names")
    return names


def parse_yolo(data: bytes, names: list[str], where: str = "labels") -> list[YoloRow]:
    """Parse one label file. Raises :class:`BadInput` naming the file, line and problem."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(f"{where}: not UTF-8 text") from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) not in (5, 6):
            raise BadInput(f"{where}: line {n}: expected 'class cx cy w h [confidence]', got {line.strip()!r}")
        try:
            cls = int(parts[0])
            vals = [float(p) for p in parts[1:]]
        except ValueError:
            raise BadInput(f"{where}: line {n}: not numbers: {line.strip()!r}") from None
        if not all(math.isfinite(v) for v in vals):
            raise BadInput(f"{where}: line {n}: non-finite value")
        if not 0 <= cls < len(names):
            raise BadInput(f"{where}: line {n}: class index {cls} outside 0..{len(names) - 1}")
        rows.append(YoloRow(names[cls], *vals[:4], confidence=vals[4] if len(vals) == 5 else None))
    return rows


def rows_to_annotation(rows: list[YoloRow], width: int, height: int, filename: str = "") -> ImageAnnotation:
    """Pixel boxes for normalised rows on a ``width`` x ``height`` image."""
    ann = ImageAnnotation(filename=filename, width=width, height=height)
    for r in rows:
        ann.boxes.append(
            Box(
                (r.cx - r.w / 2) * width, (r.cy - r.h / 2) * height,
                (r.cx + r.w / 2) * width, (r.cy + r.h / 2) * height,
                r.name, confidence=r.confidence,
            )
        )
    return ann


def to_yolo(ann: ImageAnnotation, class_index: dict[str, int], with_confidence: bool = False) -> str:
    """Label file text for ``ann`` (needs ``width``/``height``); unknown classes raise :class:`BadInput`."""
    if ann.width <= 0 or ann.height <= 0:
        raise BadInput(f"{ann.filename}: image size unknown, cannot normalise boxes")
    lines = []
    for b in ann.boxes:
        if b.name not in class_index:
            raise BadInput(f"{ann.filename}: class {b.name!r} is not among the export's classes")
        cx, cy = (b.x1 + b.x2) / 2 / ann.width, (b.y1 + b.y2) / 2 / ann.height
        w, h = (b.x2 - b.x1) / ann.width, (b.y2 - b.y1) / ann.height
        line = f"{class_index[b.name]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"
        if with_confidence:
            line += f" {b.confidence if b.confidence is not None else 1.0:.6f}"
        lines.append(line)
    return "\n".join(lines) + ("\n" if lines else "")


def write_class_names(names: list[str]) -> str:
    """``classes.txt`` content."""
    return "".join(f"{n}\n" for n in names)
