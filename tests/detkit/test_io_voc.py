"""detkit.io.voc: the one-pass reader keeps every field, refuses declarations, names the problem."""

from __future__ import annotations

import pytest

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput
from detkit.io.voc import parse_voc, to_voc


def test_round_trip_keeps_every_field_and_ymir_extra():
    ann = ImageAnnotation(filename="a.jpg", width=64, height=48, image_quality=0.5, tags={"weather": "rain"})
    ann.boxes = [Box(1.5, 2, 30, 40.25, "cat", True, True, "Left", 0.875, 0.5, {"occluded": "yes"}),
                 Box(0, 0, 10, 10, "dog")]
    back = parse_voc(to_voc(ann), "a.xml")
    assert (back.filename, back.width, back.height, back.depth) == ("a.jpg", 64, 48, 3)
    assert back.image_quality == 0.5 and back.tags == {"weather": "rain"}
    assert back.boxes[0] == Box(1.5, 2, 30, 40.25, "cat", True, True, "Left", 0.875, 0.5, {"occluded": "yes"})
    assert back.boxes[1] == Box(0, 0, 10, 10, "dog", False, False, "Unspecified", None, None, {})


def test_comments_are_skipped_and_the_first_of_repeated_fields_counts():
    doc = b"""<annotation><!-- made by hand --><filename>x.png</filename><filename>y.png</filename>
      <size><width>10</width><!-- c --><height>8</height></size>
      <object><name>cat</name><name>dog</name><difficult>true</difficult>
        <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax><xmin>9</xmin></bndbox></object>
    </annotation>"""
    ann = parse_voc(doc)
    assert (ann.filename, ann.width, ann.height, ann.depth) == ("x.png", 10, 8, 3)
    (box,) = ann.boxes
    assert (box.name, box.x1, box.y1, box.x2, box.y2, box.difficult) == ("cat", 1, 2, 3, 4, True)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"<annotation><object><bndbox/></object></annotation>", "f.xml: object 1: missing <name>"),
        (b"<annotation><object><name>cat</name></object></annotation>", r"object 1 \(cat\): missing <bndbox>"),
        (b"<annotation><object><name>cat</name><bndbox><xmin>a</xmin></bndbox></object></annotation>",
         "<xmin> is not a number: 'a'"),
        (b"<annotation><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax></bndbox>"
         b"</object></annotation>", "<ymax> is not a number: ''"),
        (b"<root/>", "root element is <root>"),
        (b"<annotation><size>", "malformed XML"),
        (b'<!doctype annotation SYSTEM "http://example.com/x.dtd"><annotation/>', "DOCTYPE"),
        (b'<annotation><!ENTITY x "y"></annotation>', "entity declarations"),
    ],
)
def test_bad_documents_name_the_file_and_the_problem(doc, message):
    with pytest.raises(BadInput, match=message):
        parse_voc(doc, "f.xml")
