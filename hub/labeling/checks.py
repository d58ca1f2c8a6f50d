"""Checking labeled boxes against a task (its classes) and an image (its size), box by box.

Two modes: a labeler's save is *strict* (a box outside the image by more than a pixel, of zero size or of a class
the task does not have is refused, naming the box); an import or a sync is *lenient* (a box sticking out is clipped
and noted, a box that cannot be used is dropped and noted), so one bad box never blocks a whole file.
"""

from __future__ import annotations

import math

from detkit.errors import BadInput
from hub.store import classes as classes_store

SOURCES = ("human", "prediction")
#: how far (pixels) a box may stick out of its image before a strict check refuses it (rounding of drags)
TOLERANCE = 1.0
MIN_SIZE = 1e-6


def _coords(b, where: str) -> tuple[float, float, float, float]:
    if not isinstance(b, dict):
        raise BadInput(f"{where}: not an object with x1, y1, x2, y2, class")
    try:
        x1, y1, x2, y2 = (float(b[k]) for k in ("x1", "y1", "x2", "y2"))
    except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: an integer too big for a float
        raise BadInput(f"{where}: needs numbers x1, y1, x2, y2") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise BadInput(f"{where}: has a coordinate that is not finite")
    return x1, y1, x2, y2


def _class(b: dict, classes: list[str], where: str) -> str:
    raw = b.get("class", "")
    try:
        name = classes_store.normalize(str(raw))
    except BadInput:
        name = ""
    if name not in classes:
        raise BadInput(f"{where}: class {raw!r} is not one of the task's classes ({', '.join(classes)})")
    return name


def check_box(b, classes: list[str], width: int, height: int, where: str, *, clip: bool) -> tuple[dict, str | None]:
    """One box as stored (pixels, inside the image) and a note when it was clipped; BadInput when unusable."""
    x1, y1, x2, y2 = _coords(b, where)
    name = _class(b, classes, where)
    if x2 < x1 or y2 < y1:
        raise BadInput(f"{where} ({name}): x2/y2 must not be less than x1/y1 (got {x1:g},{y1:g},{x2:g},{y2:g})")
    out_by = max(-x1, -y1, x2 - width, y2 - height)
    if out_by > TOLERANCE and not clip:
        raise BadInput(f"{where} ({name}): ({x1:g},{y1:g})-({x2:g},{y2:g}) lies outside the {width}x{height} image")
    cx1, cx2 = max(0.0, min(x1, width)), max(0.0, min(x2, width))
    cy1, cy2 = max(0.0, min(y1, height)), max(0.0, min(y2, height))
    if cx2 - cx1 < MIN_SIZE or cy2 - cy1 < MIN_SIZE:
        raise BadInput(f"{where} ({name}): zero size inside the {width}x{height} image")
    note = (f"{where} ({name}): clipped to the {width}x{height} image (it stuck out by {out_by:.1f} px)"
            if out_by > TOLERANCE else None)
    source = b.get("source") if b.get("source") in SOURCES else "human"
    return {"x1": cx1, "y1": cy1, "x2": cx2, "y2": cy2, "class": name, "source": source}, note


def check_boxes(classes: list[str], boxes, width: int, height: int, where: str) -> list[dict]:
    """Strict: every box usable as it is, else BadInput naming the first bad one."""
    if not isinstance(boxes, list):
        raise BadInput(f"{where}: boxes must be a list")
    return [check_box(b, classes, width, height, f"{where}: box {i}", clip=False)[0] for i, b in enumerate(boxes)]


def clean_boxes(classes: list[str], boxes, width: int, height: int, where: str) -> tuple[list[dict], list[str]]:
    """Lenient: the usable boxes (clipped where needed) and one line per box clipped or dropped."""
    if not isinstance(boxes, list):
        return [], [f"{where}: boxes must be a list, the image's labels were dropped"]
    kept, problems = [], []
    for i, b in enumerate(boxes):
        try:
            box, note = check_box(b, classes, width, height, f"{where}: box {i}", clip=True)
        except BadInput as exc:
            problems.append(f"{exc.message}: dropped")
            continue
        kept.append(box)
        if note:
            problems.append(note)
    return kept, problems
