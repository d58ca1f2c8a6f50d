"""Pascal VOC XML, with YMIR's extra fields, read safely and written back.

Reading refuses DOCTYPEs and entities (XXE, billion laughs) and never touches the network.
YMIR extras: per object ``confidence``, ``box_quality`` and ``tags`` (child elements = box tags);
per image ``image_quality`` and ``tags`` (image-level tags). Coordinates may be floats.
"""

from __future__ import annotations

from lxml import etree

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput

_PARSER_OPTS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True)


def _parser() -> etree.XMLParser:
    # A parser per call: lxml parsers are not thread-safe and imports run in worker threads.
    return etree.XMLParser(**_PARSER_OPTS)


def _text(el, tag: str, default: str = "") -> str:
    child = el.find(tag)
    return child.text.strip() if child is not None and child.text else default


def _float(el, tag: str, where: str) -> float:
    raw = _text(el, tag)
    try:
        return float(raw)
    except ValueError:
        raise BadInput(f"{where}: <{tag}> is not a number: {raw!r}") from None


def _optional_float(el, tag: str, where: str) -> float | None:
    return _float(el, tag, where) if el.find(tag) is not None and _text(el, tag) else None


def _tags(el) -> dict[str, str]:
    tags = el.find("tags")
    if tags is None:
        return {}
    return {child.tag: (child.text or "").strip() for child in tags if isinstance(child.tag, str)}


def parse_voc(data: bytes, where: str = "annotation") -> ImageAnnotation:
    """Parse one VOC XML document. Raises :class:`BadInput` naming ``where`` and the problem."""
    if b"<!DOCTYPE" in data[:4096].upper() or b"<!ENTITY" in data.upper():
        raise BadInput(f"{where}: XML with a DOCTYPE or entity declarations is refused")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise BadInput(f"{where}: malformed XML ({exc})") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise BadInput(f"{where}: XML with a DOCTYPE is refused")
    if root.tag != "annotation":
        raise BadInput(f"{where}: root element is <{root.tag}>, expected <annotation>")
    size = root.find("size")
    ann = ImageAnnotation(filename=_text(root, "filename"))
    if size is not None:
        ann.width = int(_float(size, "width", where)) if _text(size, "width") else 0
        ann.height = int(_float(size, "height", where)) if _text(size, "height") else 0
        ann.depth = int(_float(size, "depth", where)) if _text(size, "depth") else 3
    ann.image_quality = _optional_float(root, "image_quality", where)
    ann.tags = _tags(root)
    for i, obj in enumerate(root.iter("object")):
        owhere = f"{where}: object {i + 1}"
        name = _text(obj, "name")
        if not name:
            raise BadInput(f"{owhere}: missing <name>")
        bb = obj.find("bndbox")
        if bb is None:
            raise BadInput(f"{owhere} ({name}): missing <bndbox>")
        ann.boxes.append(
            Box(
                x1=_float(bb, "xmin", owhere),
                y1=_float(bb, "ymin", owhere),
                x2=_float(bb, "xmax", owhere),
                y2=_float(bb, "ymax", owhere),
                name=name,
                difficult=_text(obj, "difficult", "0") in ("1", "true", "True"),
                truncated=_text(obj, "truncated", "0") in ("1", "true", "True"),
                pose=_text(obj, "pose"),
                confidence=_optional_float(obj, "confidence", owhere),
                box_quality=_optional_float(obj, "box_quality", owhere),
                tags=_tags(obj),
            )
        )
    return ann


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
