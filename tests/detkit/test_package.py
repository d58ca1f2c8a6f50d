"""Model packages: manifest validation, sha256 verification, safe pack/unpack."""

from __future__ import annotations

import json
import stat
import zipfile

import pytest

from detkit.errors import BadModel, TooLarge
from detkit.manifest import ModelSpec
from detkit.package import MANIFEST, pack, read_manifest, unpack, verify, write_package

SPEC = ModelSpec(class_names=["cat", "dog"], input_size=64)


@pytest.fixture
def pkg(tmp_path):
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "model.xml").write_text("<net/>")
    (folder / "model.bin").write_bytes(b"\x01" * 1000)
    write_package(folder, name="pets", version="1.2", spec=SPEC, model="model.xml", files=["model.bin"],
                  backend="openvino", precision="fp16", accuracy={"mAP50": 91.5}, status="accepted")
    return folder


def test_manifest_fields(pkg):
    data = json.loads((pkg / MANIFEST).read_text())
    assert data["schema"] == 1 and data["task"] == "detection" and data["class_names"] == ["cat", "dog"]
    assert data["spec"]["input_size"] == 64 and data["backend"] == "openvino" and data["precision"] == "fp16"
    assert set(data["files"]) == {"model.xml", "model.bin"} and all(len(v) == 64 for v in data["files"].values())
    assert verify(pkg).accuracy == {"mAP50": 91.5}


def test_tampered_or_missing_file_is_named(pkg):
    (pkg / "model.bin").write_bytes(b"\x02" * 1000)
    with pytest.raises(BadModel, match="sha256 mismatch for 'model.bin'"):
        verify(pkg)
    (pkg / "model.bin").unlink()
    with pytest.raises(BadModel, match="file 'model.bin' listed in manifest.json is missing"):
        verify(pkg)


def test_bad_manifests(pkg):
    data = json.loads((pkg / MANIFEST).read_text())
    for change, message in (
        ({"schema": 7}, "unsupported package schema 7"),
        ({"files": {"../model.xml": "0" * 64}}, "unsafe path '../model.xml'"),
        ({"model": "other.onnx"}, "model file 'other.onnx' is not listed"),
        ({"status": "maybe"}, "unknown status 'maybe'"),
        ({"spec": {"class_names": []}}, "class_names must be a non-empty list"),
    ):
        (pkg / MANIFEST).write_text(json.dumps({**data, **change}))
        with pytest.raises(BadModel, match=message):
            read_manifest(pkg)
    (pkg / MANIFEST).write_text("{not json")
    with pytest.raises(BadModel, match="manifest.json: not valid JSON"):
        read_manifest(pkg)


def test_pack_unpack_roundtrip(pkg, tmp_path):
    archive = pack(pkg, tmp_path / "out" / "pets.zip")
    assert verify(archive).name == "pets"
    manifest = unpack(archive, tmp_path / "dest")
    assert (tmp_path / "dest" / "model.bin").read_bytes() == b"\x01" * 1000 and manifest.version == "1.2"
    with pytest.raises(TooLarge, match="over the 10 byte limit"):
        unpack(archive, tmp_path / "small", max_bytes=10)


def _zip_with(tmp_path, pkg, name: str, data: bytes = b"x", link: bool = False):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(pkg / MANIFEST, MANIFEST)
        zf.write(pkg / "model.xml", "model.xml")
        zf.write(pkg / "model.bin", "model.bin")
        info = zipfile.ZipInfo(name)
        if link:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, data)
    return archive


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/evil", "a/../../b"])
def test_unpack_refuses_path_escapes(pkg, tmp_path, name):
    with pytest.raises(BadModel, match="unsafe path"):
        unpack(_zip_with(tmp_path, pkg, name), tmp_path / "dest")
    assert not (tmp_path / "escape.txt").exists()


def test_unpack_refuses_links_and_corrupt_archives(pkg, tmp_path):
    with pytest.raises(BadModel, match="is a link"):
        unpack(_zip_with(tmp_path, pkg, "link", b"/etc/passwd", link=True), tmp_path / "dest")
    corrupt = tmp_path / "c.zip"
    with zipfile.ZipFile(corrupt, "w") as zf:
        zf.write(pkg / MANIFEST, MANIFEST)
        zf.writestr("model.xml", "<net/>")
        zf.writestr("model.bin", b"\x03" * 1000)
    with pytest.raises(BadModel, match="c.zip: sha256 mismatch for 'model.bin'"):
        verify(corrupt)
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"PK nope")
    with pytest.raises(BadModel, match="x.zip: not a zip archive"):
        verify(not_zip)
