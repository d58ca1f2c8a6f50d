"""COCO detection datasets (``instances``-style JSON) read safely and written back.

Scope: dataset import/export (boxes only). ``bbox`` is ``[x, y, w, h]`` in pixels and becomes an
xyxy :class:`Box`; ``score`` becomes ``confidence``; ``iscrowd`` maps to ``difficult`` (both mean
"do not count as a miss"). YMIR extras travel in an ``attributes`` object per annotation
(``truncated``, ``pose``, ``box_quality``, ``tags``) and as ``image_quality`` / ``tags`` keys on
each image, so an export re-imports without loss. A predictions file may also be a COCO
*results* list (``[{"image_id", "category_id", "bbox", "score"}]``), resolved against the
ground truth's images.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput


@dataclass
class CocoFile:
    """A parsed COCO file: annotations by ``file_name``, plus the id tables needed for results."""

    annotations: dict[str, ImageAnnotation] = field(default_factory=dict)
    image_files: dict[object, str] = field(default_factory=dict)  # image id -> file_name
    categories: dict[object, str] = field(default_factory=dict)  # category id -> name


def _load(data: bytes, where: str):
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"{where}: not valid JSON ({exc})") from None


def _list(doc: dict, key: str, where: str, required: bool = True) -> list:
    value = doc.get(key, None if required else [])
    if not isinstance(value, list):
        raise BadInput(f"{where}: '{key}' must be a list")
    return value


def _number(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise BadInput(f"{what} must be a finite number, got {v!r}")
    return float(v)


def _str_dict(v, what: str) -> dict[str, str]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise BadInput(f"{what} must be an object")
    return {str(k): str(x) for k, x in v.items()}


def _categories(doc: dict, where: str) -> dict[object, str]:
    cats: dict[object, str] = {}
    for i, cat in enumerate(_list(doc, "categories", where)):
        if not isinstance(cat, dict) or "id" not in cat or not isinstance(cat.get("name"), str):
            raise BadInput(f"{where}: categories[{i}] needs an 'id' and a string 'name'")
        cats[cat["id"]] = cat["name"]
    return cats


def _box(a: dict, cats: dict, what: str) -> Box:
    if a.get("category_id") not in cats:
        raise BadInput(f"{what}: unknown category_id {a.get('category_id')!r}")
    bbox = a.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise BadInput(f"{what}: 'bbox' must be [x, y, w, h]")
    x, y, w, h = (_number(v, f"{what}: bbox") for v in bbox)
    attrs = a.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise BadInput(f"{what}: 'attributes' must be an object")
    score = a.get("score")
    bq = attrs.get("box_quality")
    return Box(
        x, y, x + w, y + h, cats[a["category_id"]],
        difficult=bool(a.get("iscrowd", 0)) or bool(attrs.get("difficult", False)),
        truncated=bool(attrs.get("truncated", False)),
        pose=str(attrs.get("pose", "")),
        confidence=None if score is None else _number(score, f"{what}: score"),
        box_quality=None if bq is None else _number(bq, f"{what}: box_quality"),
        tags=_str_dict(attrs.get("tags"), f"{what}: tags"),
    )


def read_coco(data: bytes, where: str = "coco") -> CocoFile:
    """Parse a COCO dataset JSON. Raises :class:`BadInput` naming ``where`` and the bad element."""
    doc = _load(data, where)
    if not isinstance(doc, dict):
        raise BadInput(f"{where}: expected a COCO object with images, annotations and categories")
    out = CocoFile(categories=_categories(doc, where))
    for i, im in enumerate(_list(doc, "images", where)):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise BadInput(f"{where}: images[{i}] needs an 'id' and a string 'file_name'")
        what = f"{where}: images[{i}]"
        iq = im.get("image_quality")
        ann = ImageAnnotation(
            filename=im["file_name"],
            width=int(_number(im.get("width", 0), f"{what}: width")),
            height=int(_number(im.get("height", 0), f"{what}: height")),
            image_quality=None if iq is None else _number(iq, f"{what}: image_quality"),
            tags=_str_dict(im.get("tags"), f"{what}: tags"),
        )
        out.image_files[im["id"]] = im["file_name"]
        out.annotations[im["file_name"]] = ann
    for i, a in enumerate(_list(doc, "annotations", where, required=False)):
        what = f"{where}: annotations[{i}]"
        if not isinstance(a, dict):
            raise BadInput(f"{what}: must be an object")
        if a.get("image_id") not in out.image_files:
            raise BadInput(f"{what}: unknown image_id {a.get('image_id')!r}")
        out.annotations[out.image_files[a["image_id"]]].boxes.append(_box(a, out.categories, what))
    return out


def read_coco_predictions(data: bytes, gt: CocoFile | None, where: str = "coco predictions") -> CocoFile:
    """Parse predictions: a full COCO file (with ``score``) or a results list resolved against ``gt``."""
    doc = _load(data, where)
    if isinstance(doc, dict):
        return read_coco(data, where)
    if not isinstance(doc, list):
        raise BadInput(f"{where}: expected a COCO object or a results list")
    if gt is None:
        raise BadInput(f"{where}: a COCO results list needs the ground truth's image ids (gt/coco-annotations.json)")
    out = CocoFile(image_files=dict(gt.image_files), categories=dict(gt.categories))
    for i, a in enumerate(doc):
        what = f"{where}: [{i}]"
        if not isinstance(a, dict):
            raise BadInput(f"{what}: must be an object")
        name = gt.image_files.get(a.get("image_id"))
        if name is None:
            raise BadInput(f"{what}: unknown image_id {a.get('image_id')!r}")
        ann = out.annotations.setdefault(name, ImageAnnotation(filename=name))
        ann.boxes.append(_box(a, out.categories, what))
    return out


def to_coco(anns: Iterable[ImageAnnotation], class_names: list[str], predictions: bool = False) -> dict:
    """A COCO dataset object for ``anns`` (in order); category ids are 1.. in ``class_names`` order.

    Boxes whose class is not in ``class_names`` raise :class:`BadInput` (an export must not drop them).
    """
    cat_ids = {name: i + 1 for i, name in enumerate(class_names)}
    images, annotations = [], []
    for image_id, ann in enumerate(anns, start=1):
        im: dict = {"id": image_id, "file_name": ann.filename, "width": ann.width, "height": ann.height}
        if ann.image_quality is not None:
            im["image_quality"] = ann.image_quality
        if ann.tags:
            im["tags"] = dict(ann.tags)
        images.append(im)
        for b in ann.boxes:
            if b.name not in cat_ids:
                raise BadInput(f"{ann.filename}: class {b.name!r} is not among the export's classes")
            w, h = b.x2 - b.x1, b.y2 - b.y1
            a: dict = {
                "id": len(annotations) + 1, "image_id": image_id, "category_id": cat_ids[b.name],
                "bbox": [round(b.x1, 3), round(b.y1, 3), round(w, 3), round(h, 3)],
                "area": round(w * h, 3), "iscrowd": 1 if b.difficult else 0,
            }
            if predictions or b.confidence is not None:
                a["score"] = b.confidence if b.confidence is not None else 1.0
            attrs: dict = {}
            if b.truncated:
                attrs["truncated"] = True
            if b.pose:
                attrs["pose"] = b.pose
            if b.box_quality is not None:
                attrs["box_quality"] = b.box_quality
            if b.tags:
                attrs["tags"] = dict(b.tags)
            if attrs:
                a["attributes"] = attrs
            annotations.append(a)
    categories = [{"id": i, "name": n, "supercategory": ""} for n, i in cat_ids.items()]
    return {"images": images, "annotations": annotations, "categories": categories}
