"""Pascal VOC XML, with YMIR's extra fields, read safely and written back.

Reading refuses DOCTYPEs and entities (XXE, billion laughs) and never touches the network.
YMIR extras: per object ``confidence``, ``box_quality`` and ``tags`` (child elements = box tags);
per image ``image_quality`` and ``tags`` (image-level tags). Coordinates may be floats.
"""

from __future__ import annotations

import threading

from lxml import etree

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput

_PARSER_OPTS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_TRUE = ("1", "true", "True")
_CORNERS = ("xmin", "ymin", "xmax", "ymax")
_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers are not thread-safe and imports run in worker threads: one parser per thread
    # (making one costs about as much as parsing a small VOC file).
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(**_PARSER_OPTS)
    return parser


def _children(el) -> dict:
    """The first child element of each tag (comments and processing instructions skipped)."""
    out: dict = {}
    for child in el:
        tag = child.tag
        if isinstance(tag, str) and tag not in out:
            out[tag] = child
    return out


def _text(el) -> str:
    return el.text.strip() if el is not None and el.text else ""


def _float(fields: dict, tag: str, where: str) -> float:
    raw = _text(fields.get(tag))
    try:
        return float(raw)
    except ValueError:
        raise BadInput(f"{where}: <{tag}> is not a number: {raw!r}") from None


def _optional_float(fields: dict, tag: str, where: str) -> float | None:
    return _float(fields, tag, where) if _text(fields.get(tag)) else None


def _tags(el) -> dict[str, str]:
    if el is None:
        return {}
    return {child.tag: (child.text or "").strip() for child in el if isinstance(child.tag, str)}


def _refuse_declarations(data: bytes, where: str) -> None:
    if b"<!" in data:  # cheap pre-check: every DOCTYPE or ENTITY declaration starts with "<!"
        upper = data.upper()
        if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
            raise BadInput(f"{where}: XML with a DOCTYPE or entity declarations is refused")


def parse_voc(data: bytes, where: str = "annotation") -> ImageAnnotation:
    """Parse one VOC XML document. Raises :class:`BadInput` naming ``where`` and the problem.

    One pass over each element's children (the first child of each tag counts, as with ``find``):
    this runs on every annotation of every import.
    """
    _refuse_declarations(data, where)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise BadInput(f"{where}: malformed XML ({exc})") from None
    if b"<!" in data:
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None:
            raise BadInput(f"{where}: XML with a DOCTYPE is refused")
    if root.tag != "annotation":
        raise BadInput(f"{where}: root element is <{root.tag}>, expected <annotation>")
    fields: dict = {}
    objects = []
    for child in root:
        tag = child.tag
        if tag == "object":
            objects.append(child)
        elif isinstance(tag, str) and tag not in fields:
            fields[tag] = child
    ann = ImageAnnotation(filename=_text(fields.get("filename")))
    size = fields.get("size")
    if size is not None:
        dims = _children(size)
        ann.width = int(_float(dims, "width", where)) if _text(dims.get("width")) else 0
        ann.height = int(_float(dims, "height", where)) if _text(dims.get("height")) else 0
        ann.depth = int(_float(dims, "depth", where)) if _text(dims.get("depth")) else 3
    ann.image_quality = _optional_float(fields, "image_quality", where)
    ann.tags = _tags(fields.get("tags"))
    boxes = ann.boxes
    for i, obj in enumerate(objects):
        of = {c.tag: c for c in reversed(obj)}  # the first child of each tag wins
        try:
            boxes.append(_box_fast(of))
        except (KeyError, AttributeError, TypeError, ValueError):  # anything unusual: the careful path
            boxes.append(_box(of, f"{where}: object {i + 1}"))
    return ann


def _flag(el) -> bool:
    if el is None:
        return False
    text = el.text
    return text is not None and text.strip() in _TRUE


def _box_fast(of: dict) -> Box:
    """A box from a well-formed ``<object>`` (children by tag); raises on anything unusual."""
    kids = list(of["bndbox"])
    if len(kids) == 4 and (kids[0].tag, kids[1].tag, kids[2].tag, kids[3].tag) == _CORNERS:
        x1, y1, x2, y2 = (float(k.text) for k in kids)  # float() accepts surrounding blanks
    else:
        corners = {c.tag: c for c in reversed(kids)}
        x1, y1 = float(corners["xmin"].text), float(corners["ymin"].text)
        x2, y2 = float(corners["xmax"].text), float(corners["ymax"].text)
    name = of["name"].text.strip()
    if not name:
        raise ValueError
    pose, conf, quality, tags = of.get("pose"), of.get("confidence"), of.get("box_quality"), of.get("tags")
    return Box(
        x1, y1, x2, y2,
        name, _flag(of.get("difficult")), _flag(of.get("truncated")),
        _text(pose) if pose is not None else "",
        float(conf.text) if conf is not None and conf.text and conf.text.strip() else None,
        float(quality.text) if quality is not None and quality.text and quality.text.strip() else None,
        _tags(tags) if tags is not None else {},
    )


def _box(of: dict, owhere: str) -> Box:
    """The same box read field by field, raising :class:`BadInput` that names what is wrong."""
    name = _text(of.get("name"))
    if not name:
        raise BadInput(f"{owhere}: missing <name>")
    bb = of.get("bndbox")
    if bb is None:
        raise BadInput(f"{owhere} ({name}): missing <bndbox>")
    corners = _children(bb)
    return Box(
        x1=_float(corners, "xmin", owhere),
        y1=_float(corners, "ymin", owhere),
        x2=_float(corners, "xmax", owhere),
        y2=_float(corners, "ymax", owhere),
        name=name,
        difficult=(_text(of.get("difficult")) or "0") in _TRUE,
        truncated=(_text(of.get("truncated")) or "0") in _TRUE,
        pose=_text(of.get("pose")),
        confidence=_optional_float(of, "confidence", owhere),
        box_quality=_optional_float(of, "box_quality", owhere),
        tags=_tags(of.get("tags")),
    )


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}"


def to_voc(ann: ImageAnnotation) -> bytes:
    """Serialise an :class:`ImageAnnotation` as VOC XML (YMIR extras included when set)."""
    root = etree.Element("annotation")
    etree.SubElement(root, "filename").text = ann.filename
    size = etree.SubElement(root, "size")
    etree.SubElement(size, "width").text = str(ann.width)
    etree.SubElement(size, "height").text = str(ann.height)
    etree.SubElement(size, "depth").text = str(ann.depth)
    if ann.image_quality is not None:
        etree.SubElement(root, "image_quality").text = f"{ann.image_quality:.4f}"
    if ann.tags:
        tags = etree.SubElement(root, "tags")
        for k, v in ann.tags.items():
            etree.SubElement(tags, k).text = v
    for b in ann.boxes:
        obj = etree.SubElement(root, "object")
        etree.SubElement(obj, "name").text = b.name
        etree.SubElement(obj, "pose").text = b.pose or "Unspecified"
        etree.SubElement(obj, "truncated").text = "1" if b.truncated else "0"
        etree.SubElement(obj, "difficult").text = "1" if b.difficult else "0"
        bb = etree.SubElement(obj, "bndbox")
        for tag, v in (("xmin", b.x1), ("ymin", b.y1), ("xmax", b.x2), ("ymax", b.y2)):
            etree.SubElement(bb, tag).text = _num(v)
        if b.confidence is not None:
            etree.SubElement(obj, "confidence").text = f"{b.confidence:.6f}"
        if b.box_quality is not None:
            etree.SubElement(obj, "box_quality").text = f"{b.box_quality:.4f}"
        if b.tags:
            tags = etree.SubElement(obj, "tags")
            for k, v in b.tags.items():
                etree.SubElement(tags, k).text = v
    return etree.tostring(root, pretty_print=True)
