"""The ``-u8`` variants: the graph takes the letterboxed uint8 NHWC image and normalises it inside.

They must find the same boxes as their float-input counterparts (onnxruntime and OpenVINO, real
model files, real images), be packaged as schema 2 with the usual accuracy check, be served by the
agent through ``/v1/detect``, and be refused by a reader that only knows schema 1 — while schema-1
packages, written as before, keep loading.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import requests
from click.testing import CliRunner

from converters.cli import main as cli_main
from converters.data import load_images
from converters.formats import TARGETS
from converters.package import convert
from detkit import manifest as manifest_module
from detkit import package as package_module
from detkit.boxes import iou_matrix
from detkit.errors import BadModel
from detkit.manifest import ModelSpec
from detkit.package import MANIFEST, pack, read_manifest, write_package
from detkit.runtime import available_backends, load

CONF = 0.3
STRONG = 0.5
OPENVINO = available_backends()["openvino"][0]


@pytest.fixture(scope="module")
def images(val_zip):
    return [np.asarray(s.image()) for s in load_images(val_zip, limit=16)]  # decoded HWC uint8, as a camera gives


@pytest.fixture(scope="module")
def built(tiny_onnx, cal_zip, tmp_path_factory):
    """{target: model path} for the float-input targets and their -u8 twins this machine can run."""
    cal = load_images(cal_zip)
    keys = ["onnx-int8", "onnx-fp32-u8", "onnx-int8-u8"]
    if OPENVINO:
        keys += ["openvino-int8", "openvino-fp32-u8", "openvino-int8-u8"]
    out = {"onnx-fp32": tiny_onnx}
    for key in keys:
        target = TARGETS[key]
        folder = tmp_path_factory.mktemp(key)
        rel, _ = target.build(tiny_onnx, folder, cal if target.needs_calibration else None, None)
        out[key] = folder / rel
    return out


def _strong_matches(ref, got):
    """(best same-class IoU, reference score, matched score) for each reference box scoring >= STRONG."""
    rows = []
    for r, g in zip(ref, got, strict=True):
        strong = r.scores >= STRONG
        if not strong.any():
            continue
        iou = iou_matrix(r.boxes[strong], g.boxes) if len(g) else np.zeros((int(strong.sum()), 1))
        if len(g):
            iou = np.where(r.class_ids[strong][:, None] == g.class_ids[None, :], iou, 0.0)
        best = iou.argmax(axis=1)
        scores = g.scores[best] if len(g) else np.zeros(len(best))
        rows.append(np.stack([iou[np.arange(len(best)), best], r.scores[strong], scores], axis=1))
    return np.concatenate(rows)


def _detect(path, backend, images):
    det = load(path, backend=backend)
    try:
        return det, det.detect(images, conf=CONF)
    finally:
        det.close()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_uint8_variants_find_the_same_boxes(built, images, backend):
    if backend == "openvino" and not OPENVINO:
        pytest.skip("openvino not installed")
    prefix = "onnx" if backend == "onnxruntime" else "openvino"
    _, ref = _detect(built["onnx-fp32"], "onnxruntime", images)
    assert sum(len(r) for r in ref) >= 20, "the tiny detector should find objects in these scenes"

    det, got = _detect(built[f"{prefix}-fp32-u8"], backend, images)
    assert det.inputs == [{"name": "images", "datatype": "UINT8", "shape": [-1, 128, 128, 3]}]
    assert det.spec.in_graph and det.spec.schema == 2 and det.info["precision"] == "fp32"
    batch, _ = det.preprocess(images[:2])  # the runtime feeds the letterbox canvas: no numpy normalisation
    assert batch.dtype == np.uint8 and batch.shape == (2, 128, 128, 3)
    m = _strong_matches(ref, got)
    assert len(m) >= 10 and np.all(m[:, 0] >= 0.97), f"fp32-u8: min IoU {m[:, 0].min():.3f}"
    assert np.max(np.abs(m[:, 1] - m[:, 2])) < 0.01  # the same computation up to float rounding

    # int8 with the uint8 input: what the float-input int8 gives (the same quantized network) ...
    _, int8 = _detect(built[f"{prefix}-int8"], backend, images)
    det, got = _detect(built[f"{prefix}-int8-u8"], backend, images)
    assert det.info["precision"] == "int8" and det.inputs[0]["datatype"] == "UINT8"
    m = _strong_matches(int8, got)
    assert np.all(m[:, 0] >= 0.9) and np.max(np.abs(m[:, 1] - m[:, 2])) < 0.05, "int8-u8 vs int8"
    # ... so the fp32 boxes within int8 tolerance, as often as the float-input int8 finds them
    def agree(other):
        m = _strong_matches(ref, other)
        return ((m[:, 0] >= 0.7) & (np.abs(m[:, 1] - m[:, 2]) <= 0.15)).mean()

    assert agree(got) >= 0.8 and agree(got) >= agree(int8) - 0.03, (agree(got), agree(int8))


def test_uint8_package_is_schema_2_validated_and_refused_by_a_schema_1_reader(tiny_onnx, cal_zip, val_zip, tmp_path,
                                                                            monkeypatch):
    key = "openvino-int8-u8" if OPENVINO else "onnx-int8-u8"
    zipped = tmp_path / "pkg.zip"
    r = CliRunner().invoke(cli_main, ["package", str(tiny_onnx), str(tmp_path / "pkg"), "--target", key,
                                      "--calibration", str(cal_zip), "--validation", str(val_zip),
                                      "--zip", str(zipped), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data == json.loads((tmp_path / "pkg" / MANIFEST).read_text()) | {"archive": str(zipped)}
    assert data["schema"] == 2 and data["spec"]["schema"] == 2
    assert (data["spec"]["layout"], data["spec"]["input_dtype"], data["spec"]["normalize"]) == ("NHWC", "uint8", "in_graph")
    assert data["status"] == "accepted", data["reason"]
    assert data["accuracy"]["delta_mAP50"] >= -2.0 and data["speed"]["latency_ms_p50"] > 0
    det = load(zipped)
    assert det.detect(next(iter(load_images(val_zip, limit=1))).image(), conf=CONF)[0].width > 0
    det.close()

    # a build that reads schema 1 only (what every agent before this one checks)
    monkeypatch.setattr(package_module, "PACKAGE_SCHEMAS", (1,))
    monkeypatch.setattr(manifest_module, "SPEC_SCHEMAS", (1,))
    with pytest.raises(BadModel, match=r"unsupported package schema 2 \(this build reads 1\)"):
        load(zipped)
    with pytest.raises(BadModel, match="unsupported spec schema 2"):  # the bare model file, by its own metadata
        load(tmp_path / "pkg" / data["model"])
    # ... still loads a schema-1 package of the same source
    assert convert("onnx-fp32", tiny_onnx, tmp_path / "old").schema == 1
    assert json.loads((tmp_path / "old" / MANIFEST).read_text())["schema"] == 1
    load(tmp_path / "old").close()


def test_old_contract_package_loads_unchanged(tiny_onnx, tmp_path, images):
    """A manifest exactly as builds before schema 2 wrote it (no input_dtype/normalize) loads and detects."""
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(tiny_onnx.read_bytes())
    spec = read_manifest_spec(tiny_onnx)
    write_package(folder, name="tiny", version="1", spec=spec, model="model.onnx")
    data = json.loads((folder / MANIFEST).read_text())
    assert data["schema"] == 1 and "normalize" not in data["spec"] and "input_dtype" not in data["spec"]
    old_spec_keys = {"class_names", "input_size", "input_name", "layout", "color", "mean", "std", "pad_value",
                     "decoding", "stride", "outputs", "schema"}
    assert set(data["spec"]) == old_spec_keys
    det = load(folder)
    assert det.inputs[0]["datatype"] == "FP32" and not det.spec.in_graph
    batch, _ = det.preprocess(images[:1])
    assert batch.dtype == np.float32 and batch.shape == (1, 3, 128, 128)
    ref = load(tiny_onnx).detect(images, conf=CONF)
    got = det.detect(images, conf=CONF)
    assert [len(r) for r in ref] == [len(g) for g in got]
    det.close()


def read_manifest_spec(onnx_path: Path) -> ModelSpec:
    from detkit.runtime.registry import onnx_metadata

    return ModelSpec.from_json(onnx_metadata(onnx_path)["ymir.spec"])


@pytest.mark.parametrize("change, message", [
    ({"layout": "NHWC"}, "unknown input format layout='NHWC', input_dtype='float32', normalize='host'"),
    ({"layout": "NHWC", "input_dtype": "uint8", "normalize": "in_graph"}, "needs spec schema 2, the spec says 1"),
    ({"schema": 3}, "unsupported spec schema 3"),
])
def test_bad_input_formats_are_named(change, message):
    data = {"class_names": ["a"], "input_size": 64, **change}
    with pytest.raises(BadModel, match=message):
        ModelSpec.from_dict(data)


def test_schema_1_manifest_cannot_carry_a_schema_2_spec(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"x")
    spec = ModelSpec(class_names=["a"], input_size=64).with_graph_input()
    write_package(folder, name="p", version="1", spec=spec, model="model.onnx")
    data = json.loads((folder / MANIFEST).read_text())
    assert data["schema"] == 2
    (folder / MANIFEST).write_text(json.dumps({**data, "schema": 1}))
    with pytest.raises(BadModel, match="a spec of schema 2 needs package schema 2"):
        read_manifest(folder)


def test_conversions_refuse_a_uint8_source(built, tmp_path):
    with pytest.raises(BadModel, match="takes uint8 NHWC input normalised in its graph"):
        convert("onnx-fp32", built["onnx-fp32-u8"], tmp_path / "again")


def _jpegs(val_zip, count: int) -> list[tuple[bytes, tuple[int, int]]]:
    out = []
    for sample in load_images(val_zip, limit=count):
        img = sample.image()
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=95)
        out.append((buf.getvalue(), img.size))
    return out


def test_agent_serves_the_uint8_package_through_v1_detect(built, tiny_onnx, val_zip, tmp_path):
    from agent.models import ModelRegistry, ServedModel, load_detector
    from agent.server import HttpServer, create_app

    folder = tmp_path / "u8"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(built["onnx-int8-u8"].read_bytes())
    spec = read_manifest_spec(tiny_onnx).with_graph_input()
    write_package(folder, name="tiny-u8", version="1", spec=spec, model="model.onnx", precision="int8")
    registry = ModelRegistry()
    registry.put(ServedModel("u8", load_detector(pack(folder, tmp_path / "u8.zip"))))
    registry.put(ServedModel("fp32", load_detector(tiny_onnx)))
    registry.ready = True
    server = HttpServer(create_app(registry), "127.0.0.1", 0, threads=2).start()
    try:
        found = 0
        for seed, (img, (w, h)) in enumerate(_jpegs(val_zip, 6)):
            r = requests.post(f"{server.url}/v1/detect?model=u8&conf=0.3", data=img)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["width"] == w and body["height"] == h
            ref = requests.post(f"{server.url}/v1/detect?model=fp32&conf=0.3", data=img).json()["detections"]
            strong = [d for d in ref if d["score"] >= STRONG]
            for d in strong:  # every confident fp32 box is found again, same class, close
                same = [o for o in body["detections"] if o["class_name"] == d["class_name"]]
                assert same, f"seed {seed}: {d} not found by the uint8 int8 package"
                iou = iou_matrix(np.array([d["box"]], np.float32), np.array([o["box"] for o in same], np.float32))
                assert iou.max() >= 0.7
            found += len(strong)
        assert found >= 3, "the sample images should hold confident objects"
        meta = requests.get(f"{server.url}/v2/models/u8").json()
        assert meta["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 128, 128, 3]}]
        listed = {m["name"]: m for m in requests.get(f"{server.url}/v1/models").json()["models"]}
        assert listed["u8"]["precision"] == "int8" and listed["u8"]["detector"]
    finally:
        server.stop()
