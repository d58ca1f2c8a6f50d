"""The exported ONNX model: one self-contained file, the spec inside, the torch model's boxes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch

from detkit.manifest import METADATA_KEY, ModelSpec
from detkit.runtime.prepost import decode_centernet, letterbox, normalize
from detkit.synth import CLASSES, scenes
from executor.predict import load_model, make_spec, raw_outputs


def _images(size: int, count: int = 3) -> np.ndarray:
    return np.stack([letterbox(img, size)[0] for img, _ in scenes(count, seed=777)])


def test_onnx_is_self_contained_with_the_spec(trained):
    path = trained.out / "models" / "best.onnx"
    model = onnx.load(str(path), load_external_data=False)
    assert not [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert not [p for p in path.parent.iterdir() if p.suffix == ".data"]
    meta = {p.key: p.value for p in model.metadata_props}
    spec = ModelSpec.from_json(meta[METADATA_KEY])
    _, torch_spec = load_model(trained.out / "models" / "best.pt", torch.device("cpu"))
    assert spec == torch_spec == make_spec(list(CLASSES), spec.input_size)
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["heatmap", "distances"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch


def test_onnxruntime_gives_the_torch_boxes(trained):
    model, spec = load_model(trained.out / "models" / "best.pt", torch.device("cpu"))
    images = _images(spec.input_size)
    sess = ort.InferenceSession(str(trained.out / "models" / "best.pt").replace(".pt", ".onnx"),
                                providers=["CPUExecutionProvider"])
    hm_o, dist_o = sess.run(None, {spec.input_name: normalize(images, spec.mean, spec.std)})
    hm_t, dist_t = raw_outputs(model, images, spec, torch.device("cpu"))
    assert hm_o.shape == hm_t.shape and np.abs(hm_o - hm_t).max() < 1e-4
    assert np.abs(dist_o - dist_t).max() < 1e-4
    dec_o = decode_centernet(hm_o, dist_o, spec.stride, conf=0.2)
    dec_t = decode_centernet(hm_t, dist_t, spec.stride, conf=0.2)
    assert sum(len(b) for b, _, _ in dec_t) > 0
    for (bo, so, co), (bt, st, ct) in zip(dec_o, dec_t, strict=True):
        assert np.array_equal(co, ct)
        np.testing.assert_allclose(so, st, atol=1e-4)
        np.testing.assert_allclose(bo, bt, atol=1e-4)
