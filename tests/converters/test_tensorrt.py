"""TensorRT: the pure parts (build plan, engine cache key) always; the build only where TensorRT is."""

from __future__ import annotations

import pytest

from converters.tensorrt import build_plan, engine_cache_key, to_tensorrt
from detkit.errors import BadInput, Unavailable
from detkit.runtime import available_backends, load

SHA = "a" * 64
TRT_OK, TRT_REASON = available_backends()["tensorrt"]


def test_build_plan_flags_and_profile():
    fp16 = build_plan("fp16", "images", 256, is_qdq=False, max_batch=8)
    assert fp16.builder_flags == ("FP16",)
    assert fp16.profile_shapes() == ((1, 3, 256, 256), (1, 3, 256, 256), (8, 3, 256, 256))
    assert fp16.workspace_bytes == 1024 << 20
    int8 = build_plan("int8", "images", 256, is_qdq=True, opt_batch=4)
    assert int8.builder_flags == ("INT8", "FP16") and int8.profile_shapes()[1] == (4, 3, 256, 256)


def test_build_plan_refuses_bad_arguments():
    with pytest.raises(BadInput, match="QDQ ONNX"):
        build_plan("int8", "images", 256, is_qdq=False)
    with pytest.raises(BadInput, match="precision must be one of fp16, int8"):
        build_plan("fp32", "images", 256, is_qdq=False)
    with pytest.raises(BadInput, match="opt_batch"):
        build_plan("fp16", "images", 256, is_qdq=False, opt_batch=9, max_batch=8)


def test_engine_cache_key_covers_every_component():
    plan = build_plan("fp16", "images", 256, is_qdq=False)
    key = engine_cache_key(SHA, "10.3.0", "NVIDIA H100", plan)
    assert len(key) == 64 and key == engine_cache_key(SHA, "10.3.0", "NVIDIA H100 ", plan)
    others = {
        engine_cache_key("b" * 64, "10.3.0", "NVIDIA H100", plan),
        engine_cache_key(SHA, "10.4.0", "NVIDIA H100", plan),
        engine_cache_key(SHA, "10.3.0", "NVIDIA A10", plan),
        engine_cache_key(SHA, "10.3.0", "NVIDIA H100", build_plan("int8", "images", 256, is_qdq=True)),
        engine_cache_key(SHA, "10.3.0", "NVIDIA H100", build_plan("fp16", "images", 256, is_qdq=False, max_batch=4)),
    }
    assert key not in others and len(others) == 5
    with pytest.raises(BadInput, match="sha256"):
        engine_cache_key("abc", "10.3.0", "x", plan)


@pytest.mark.skipif(TRT_OK, reason="TensorRT is installed here")
def test_missing_tensorrt_is_unavailable_not_a_crash(tiny_onnx, tmp_path):
    assert "pip install 'ymir-edge[tensorrt]'" in TRT_REASON
    with pytest.raises(Unavailable, match=r"pip install 'ymir-edge\[tensorrt\]'"):
        to_tensorrt(tiny_onnx, tmp_path / "m.engine")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x00" * 64)
    with pytest.raises(Unavailable, match="backend tensorrt unavailable"):
        load(engine)


@pytest.mark.skipif(not TRT_OK, reason=f"TensorRT not usable here: {TRT_REASON}")
def test_build_and_run_engine(tiny_onnx, tmp_path):  # pragma: no cover - needs an NVIDIA GPU
    engine = to_tensorrt(tiny_onnx, tmp_path / "m.engine", "fp16", max_batch=4, cache_dir=tmp_path / "cache")
    det = load(engine, device="cuda")
    assert det.backend == "tensorrt" and det.info["input_shape"][1:] == [3, 128, 128]
    assert len(list((tmp_path / "cache").glob("*.engine"))) == 1
