"""The agent's HTTP inference server through standard clients: tritonclient (binary + JSON) and requests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
from agent_helpers import sample_jpeg

from agent.models import ModelRegistry, ServedModel, load_detector
from agent.server import HttpServer, create_app


@pytest.fixture
def served(detector_onnx, plain_onnx):
    registry = ModelRegistry()
    registry.put(ServedModel("tiny", load_detector(detector_onnx), settings={"conf": 0.3}))
    registry.put(ServedModel("plain", load_detector(plain_onnx)))
    registry.ready = True
    seen = []
    app = create_app(registry, on_detect=lambda m, img, payload: seen.append((m.name, len(img), payload)))
    server = HttpServer(app, "127.0.0.1", 0, threads=2).start()
    yield server, registry, seen
    server.stop()


def test_tritonclient_binary_and_json_round_trip(served):
    import tritonclient.http as httpclient

    server, _, _ = served
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("plain")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert client.is_model_ready("plain")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    for binary_in, binary_out in [(True, True), (False, False), (True, False), (False, True)]:
        inp = httpclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary_in)
        outs = [httpclient.InferRequestedOutput("y", binary_data=binary_out),
                httpclient.InferRequestedOutput("s", binary_data=binary_out)]
        res = client.infer("plain", [inp], outputs=outs, request_id="req-7")
        np.testing.assert_allclose(res.as_numpy("y"), 2 * x + 1)
        np.testing.assert_allclose(res.as_numpy("s"), x.sum(axis=1))
        assert res.get_response()["id"] == "req-7"
        out_meta = res.get_output("y")
        assert ("binary_data_size" in out_meta.get("parameters", {})) == binary_out
    client.close()


def test_tritonclient_detector_raw_tensors_match_in_process(served, detector_onnx):
    import tritonclient.http as httpclient

    server, registry, _ = served
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    x = np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)
    inp = httpclient.InferInput("images", [1, 3, 32, 32], "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    res = client.infer("tiny", [inp])  # no outputs named: all, binary by default in tritonclient
    local = registry.get("tiny").detector.run({"images": x})
    np.testing.assert_array_equal(res.as_numpy("heatmap"), local["heatmap"])
    np.testing.assert_array_equal(res.as_numpy("distances"), local["distances"])
    client.close()


def test_oip_errors_have_protocol_shape(served):
    server, registry, _ = served
    base = server.url
    r = requests.post(f"{base}/v2/models/nope/infer", json={"inputs": []})
    assert r.status_code == 404 and set(r.json()) == {"error"}
    r = requests.post(f"{base}/v2/models/plain/infer", data=b"{not json")
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    bad_shape = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}
    r = requests.post(f"{base}/v2/models/plain/infer", json=bad_shape)
    assert r.status_code == 400 and "shape" in r.json()["error"]
    short = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]}
    head = json.dumps(short).encode()
    r = requests.post(f"{base}/v2/models/plain/infer", data=head + b"\0" * 8,
                      headers={"Inference-Header-Content-Length": str(len(head))})
    assert r.status_code == 400 and "binary" in r.json()["error"]
    assert requests.get(f"{base}/v2/models/plain/versions/9").status_code == 404
    registry.set_enabled("plain", False)
    r = requests.post(f"{base}/v2/models/plain/infer",
                      json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]})
    assert r.status_code == 503 and "disabled" in r.json()["error"]
    assert requests.get(f"{base}/v2/models/plain/ready").status_code == 503


def test_detect_multipart_and_raw_with_scores(served):
    server, registry, seen = served
    img = sample_jpeg(3)
    r = requests.post(f"{server.url}/v1/detect", files={"image": ("a.jpg", img, "image/jpeg")},
                      data={"model": "tiny", "conf": "0.5"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["width"] == 64 and body["height"] == 48
    assert body["detections"] and all(d["score"] >= 0.5 for d in body["detections"])
    assert {d["class_name"] for d in body["detections"]} <= {"circle", "square", "triangle"}
    assert set(body["scores"]) >= {"least_confidence", "margin", "entropy", "near_threshold"}
    expected = registry.get("tiny").detector.detect(img, conf=0.5)[0]
    assert len(body["detections"]) == len(expected)
    # raw body, settings default conf 0.3 from the deployment settings
    r2 = requests.post(f"{server.url}/v1/detect?model=tiny", data=img)
    assert r2.status_code == 200 and r2.json()["conf"] == 0.3
    assert len(seen) == 2 and seen[0][0] == "tiny" and seen[0][1] == len(img)
    # errors: not an image, bad conf, plain model, disabled
    r = requests.post(f"{server.url}/v1/detect?model=tiny", data=b"not an image")
    assert r.status_code == 400 and r.json()["code"] == "bad_input"
    assert requests.post(f"{server.url}/v1/detect?model=tiny&conf=7", data=img).status_code == 400
    assert requests.post(f"{server.url}/v1/detect?model=plain", data=img).status_code == 400
    registry.set_enabled("tiny", False)
    assert requests.post(f"{server.url}/v1/detect?model=tiny", data=img).status_code == 503
    models = requests.get(f"{server.url}/v1/models").json()["models"]
    assert {m["name"]: m["enabled"] for m in models} == {"plain": True, "tiny": False}


def test_bearer_token_required_except_health(detector_onnx):
    registry = ModelRegistry()
    registry.put(ServedModel("tiny", load_detector(detector_onnx)))
    registry.ready = True
    client = create_app(registry, token="s3cret").test_client()
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/models/tiny").status_code == 401
    assert client.get("/v2/models/tiny", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v2/models/tiny", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    req = {"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 3, 32, 32], "data": [0.5] * 3072}]}
    r = client.post("/v2/models/tiny/infer", json=req)
    assert r.status_code == 401 and set(r.get_json()) == {"error"}
    r = client.post("/v2/models/tiny/infer", json=req, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and {o["name"] for o in r.get_json()["outputs"]} == {"heatmap", "distances"}


def test_chunked_infer_goes_through_flask_with_same_result(served):
    server, _, _ = served
    req = {"id": "c", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    body = json.dumps(req).encode()
    plain = requests.post(f"{server.url}/v2/models/plain/infer", data=body).json()
    chunked = requests.post(f"{server.url}/v2/models/plain/infer", data=iter([body[:10], body[10:]])).json()
    assert plain == chunked and plain["outputs"][0]["data"] == [3.0, 5.0, 7.0, 9.0]
    r = requests.post(f"{server.url}/v2/models/plain/infer", data=iter([b"{bad"]))
    assert r.status_code == 400 and set(r.json()) == {"error"}


def test_statistics_extension_counts_server_side_time(served):
    """tritonclient's get_inference_statistics reads the agent's per-model timings: the count of
    /infer requests (fast path and Flask path), their server-side time and its parts, and failures."""
    import tritonclient.http as httpclient

    server, _, _ = served
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert "statistics" in client.get_server_metadata()["extensions"]
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    for _ in range(3):
        client.infer("plain", [inp])
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}).encode()
    assert requests.post(f"{server.url}/v2/models/plain/infer", data=iter([body])).status_code == 200  # chunked: Flask
    bad = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2]}]}
    assert requests.post(f"{server.url}/v2/models/plain/infer", json=bad).status_code == 400
    doc = client.get_inference_statistics("plain")
    (item,) = doc["model_stats"]
    st = item["inference_stats"]
    assert item["name"] == "plain" and item["inference_count"] == 4 and st["success"]["count"] == 4
    assert st["fail"]["count"] == 1 and st["fail"]["ns"] > 0
    parts = st["compute_input"]["ns"] + st["compute_infer"]["ns"] + st["compute_output"]["ns"]
    assert 0 < st["compute_infer"]["ns"] and 0 < parts <= st["success"]["ns"]
    assert item["last_inference"] > 0
    versioned = requests.get(f"{server.url}/v2/models/plain/versions/{item['version']}/stats").json()
    assert versioned["model_stats"][0]["inference_count"] == 4
    assert requests.get(f"{server.url}/v2/models/nope/stats").status_code == 404
    untouched = client.get_inference_statistics("tiny")["model_stats"][0]
    assert untouched["inference_count"] == 0 and untouched["inference_stats"]["success"]["ns"] == 0
    client.close()
