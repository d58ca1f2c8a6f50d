"""Model store: download -> verify -> load -> health -> atomic switch; failures keep the old model."""

from __future__ import annotations

import os

import numpy as np
import pytest
from agent_helpers import make_detector_onnx, make_package_zip

from agent.config import load_settings
from agent.download import download
from agent.models import ModelRegistry
from agent.protocol import Deployment
from agent.store import ModelStore
from detkit.errors import Conflict, Unavailable


def make_store(tmp_path, hub, **over):
    settings = load_settings(env={}, overrides={"device_id": "dev1", "store_dir": str(tmp_path / "store"),
                                                "hub_url": hub.url, "device_token": hub.token, **over})
    reports = []
    registry = ModelRegistry()
    store = ModelStore(settings, registry, lambda *a, **k: reports.append((a, k)))
    return store, registry, reports


def dep(hub, data: bytes, revision: int, name: str = "det", **kw) -> Deployment:
    return Deployment(name=name, revision=revision, settings={"conf": 0.3}, **hub.add(data), **kw)


def states(reports):
    return [(a[0], a[1], a[2]) for a, _ in reports]


def test_deploy_healthy_then_broken_keeps_previous(tmp_path, hub):
    store, registry, reports = make_store(tmp_path, hub)
    good = make_package_zip(tmp_path / "p1", tmp_path / "p1.zip").read_bytes()
    assert store.apply(dep(hub, good, 1))
    assert states(reports) == [("det", 1, "downloading"), ("det", 1, "verifying"), ("det", 1, "loading"),
                               ("det", 1, "healthy")]
    served = registry.get("det")
    assert served.version == "1" and served.is_detector and served.settings == {"conf": 0.3}
    reports.clear()
    broken = make_package_zip(tmp_path / "p2", tmp_path / "p2.zip", version="2", nan=True).read_bytes()
    assert not store.apply(dep(hub, broken, 2))
    name, rev, state, reason = reports[-1][0]
    assert (name, rev, state) == ("det", 2, "failed") and "non-finite" in reason
    assert registry.get("det") is served and store.current("det")["revision"] == 1
    # the failed revision is not retried; the same desired message is a no-op
    reports.clear()
    assert store.apply(dep(hub, broken, 2)) and reports == []
    # an older revision is a no-op too
    assert store.apply(dep(hub, good, 0)) and reports == []


def test_sha_mismatch_and_disallowed_backend_fail(tmp_path, hub):
    store, registry, reports = make_store(tmp_path, hub)
    data = make_detector_onnx(tmp_path / "m.onnx").read_bytes()
    d = dep(hub, data, 1)
    hub.blobs[d.sha256] = data[:-10] + b"0123456789"  # same size, other bytes
    assert not store.apply(d)
    assert reports[-1][0][2] == "failed" and "sha256 mismatch" in reports[-1][0][3]
    assert registry.find("det") is None
    assert not store.apply(dep(hub, data, 2, backend="openvino"))
    assert "not allowed" in reports[-1][0][3]


def test_bare_onnx_rollback_and_pruning(tmp_path, hub):
    store, registry, reports = make_store(tmp_path, hub, keep_slots=1)
    blobs = [make_detector_onnx(tmp_path / f"m{i}.onnx", scale=1.0 + i).read_bytes() for i in range(3)]
    for i, b in enumerate(blobs, start=1):
        assert store.apply(dep(hub, b, i))
    assert registry.get("det").revision == 3
    assert [store.slot_meta(s)["revision"] for s in store.healthy_slots("det")] == [2]  # keep_slots=1
    result = store.rollback("det")
    assert result == {"deployment": "det", "revision": 2, "from_revision": 3}
    assert registry.get("det").revision == 2 and reports[-1][0][2] == "rolled_back"
    # revision 3 is pinned: the retained desired state does not re-apply it
    reports.clear()
    assert store.apply(dep(hub, blobs[2], 3)) and reports == []
    with pytest.raises(Conflict):
        store.rollback("det")  # nothing older kept
    assert store.apply(dep(hub, blobs[0], 4)) and registry.get("det").revision == 4


def test_restore_after_restart_serves_last_healthy(tmp_path, hub):
    store, registry, _ = make_store(tmp_path, hub)
    assert store.apply(dep(hub, make_detector_onnx(tmp_path / "a.onnx").read_bytes(), 5))
    store.set_enabled("det", False)
    # a half-unpacked slot left by a crash must be cleaned, not served
    junk = store.slots / "det" / ".r000006-deadbeef.tmp"
    junk.mkdir()
    store2, registry2, _ = make_store(tmp_path, hub)
    assert store2.restore() == ["det"]
    m = registry2.get("det")
    assert m.revision == 5 and m.enabled is False
    assert not junk.exists()
    x = np.zeros((1, 3, 32, 32), np.float32)
    assert m.detector.run({"images": x})["heatmap"].shape == (1, 3, 8, 8)


def test_download_resumes_with_range(tmp_path, hub):
    data = os.urandom(200_000)
    d = hub.add(data)
    dest = tmp_path / "dl" / d["sha256"]
    dest.parent.mkdir()
    (dest.parent / (dest.name + ".part")).write_bytes(data[:70_000])
    download(d["url"], dest, d["sha256"], d["size"], token=hub.token)
    assert dest.read_bytes() == data
    assert hub.range_requests == ["bytes=70000-"]


def test_download_unreachable_keeps_partial(tmp_path):
    from agent_helpers import free_port

    dest = tmp_path / "x"
    part = tmp_path / "x.part"
    part.write_bytes(b"abc")
    with pytest.raises(Unavailable):
        download(f"http://127.0.0.1:{free_port()}/a", dest, "0" * 64, 10, attempts=2, timeout=1)
    assert part.read_bytes() == b"abc"


def test_tensorrt_deploy_builds_on_device_or_fails_cleanly(tmp_path, hub):
    from detkit.runtime import available_backends

    store, registry, reports = make_store(tmp_path, hub, allowed_backends="onnxruntime,tensorrt")
    onnx_bytes = make_detector_onnx(tmp_path / "m.onnx").read_bytes()
    assert store.apply(dep(hub, onnx_bytes, 1))
    ok = store.apply(dep(hub, onnx_bytes, 2, backend="tensorrt"))
    if available_backends()["tensorrt"][0]:
        assert ok and registry.get("det").revision == 2
    else:  # no TensorRT here: the reason names it, revision 1 keeps serving
        assert not ok and "tensorrt" in reports[-1][0][3].lower()
        assert registry.get("det").revision == 1


def test_relative_url_without_hub_and_garbage_artifact_fail_with_reason(tmp_path, hub):
    store, registry, reports = make_store(tmp_path, hub, hub_url="")
    data = make_detector_onnx(tmp_path / "m.onnx").read_bytes()
    d = dep(hub, data, 1)
    rel = Deployment(name="det", revision=1, sha256=d.sha256, url=f"/api/v1/artifacts/{d.sha256}", size=d.size)
    assert not store.apply(rel)
    assert reports[-1][0][2] == "failed" and "not usable" in reports[-1][0][3]
    store2, registry2, reports2 = make_store(tmp_path / "b", hub)
    assert not store2.apply(dep(hub, b"this is not a model at all", 1))
    assert reports2[-1][0][2] == "failed" and registry2.find("det") is None
    assert not list((store2.slots / "det").iterdir())  # the half-made slot is gone
