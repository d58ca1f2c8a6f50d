"""Calibration/validation image sets: folders and YMIR-layout zips."""

from __future__ import annotations

import zipfile

import pytest

from converters.data import load_images
from detkit.errors import BadInput
from detkit.io.voc import to_voc
from detkit.synth import scenes


def test_folder_with_gt_subfolder_and_images_subfolder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "gt").mkdir()
    for img, ann in scenes(3, seed=2):
        img.save(tmp_path / "images" / ann.filename)
        (tmp_path / "gt" / ann.filename).with_suffix(".xml").write_bytes(to_voc(ann))
    images = load_images(tmp_path, need_annotations=True)
    assert len(images) == 3 and images.annotated
    boxes, classes = images.ground_truth(["circle", "square", "triangle"])
    assert all(b.shape[1] == 4 for b in boxes) and sum(len(c) for c in classes) > 0
    assert images.samples[0].image().size == (images.samples[0].annotation.width, images.samples[0].annotation.height)


def test_zip_layout(val_zip):
    images = load_images(val_zip, limit=5)
    assert len(images) == 5 and all(s.member.startswith("images/") for s in images)
    assert images.samples[0].image().mode == "RGB"


def test_not_a_dataset(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("hello")
    with pytest.raises(BadInput, match="x.txt: not a folder nor a zip"):
        load_images(f)
    z = tmp_path / "docs.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.md", "no images")
    with pytest.raises(BadInput, match="docs.zip: no images found"):
        load_images(z)


def test_broken_image_is_named(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    images = load_images(tmp_path)
    with pytest.raises(BadInput, match="bad.jpg: not a readable image"):
        images.samples[0].image()
