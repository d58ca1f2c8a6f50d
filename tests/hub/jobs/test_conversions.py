"""A trained model stage becomes validated edge packages through a hub job (CLI, API, page)."""

from __future__ import annotations

import json
import re
import zipfile

import pytest
from hub_helpers import shapes_hub

from detkit.package import verify
from hub import create_app
from hub.config import load_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    run = shapes_hub(tmp_path_factory.mktemp("ws"))
    model = json.loads(run("train", "--project", "shapes", "--train", "1", "--val", "2", "--set", "epochs=2",
                           "--set", "input_size=128", "--wait", "--json").stdout)
    run.model_id = model["model_id"]
    return run


def test_convert_from_the_cli_records_accuracy_and_speed(hub):
    out = json.loads(hub("model", "convert", str(hub.model_id), "--targets", "onnx-int8,openvino-int8", "--wait",
                         "--json").stdout)
    packages = out["packages"]
    assert [p["target"] for p in packages] == ["onnx-int8", "openvino-int8"]
    for p in packages:
        assert p["status"] in ("accepted", "rejected")
        assert {"mAP50", "mAP50_95", "delta_mAP50", "delta_mAP50_95"} <= set(p["accuracy"])
        assert {"latency_ms_p50", "latency_ms_p95", "images_per_s"} <= set(p["speed"])
        zip_path = hub.home / "artifacts" / f"{p['sha256']}.zip"
        assert zipfile.is_zipfile(zip_path) and zip_path.stat().st_size == p["size_bytes"]
        manifest = verify(zip_path)
        assert manifest.precision == p["precision"] and manifest.backend == p["backend"]
    listed = json.loads(hub("model", "packages", str(hub.model_id), "--json").stdout)
    assert {p["id"] for p in listed} == {p["id"] for p in packages}


def test_bad_conversion_requests_are_refused(hub):
    r = hub("model", "convert", str(hub.model_id), "--targets", "onnx-int4", ok=False)
    assert r.exit_code == 2 and "unknown conversion target(s) onnx-int4" in r.stderr
    r = hub("model", "convert", str(hub.model_id), "--stage", "nope", ok=False)
    assert r.exit_code == 2 and "has no stage 'nope'" in r.stderr
    r = hub("model", "convert", "999", ok=False)
    assert r.exit_code == 2 and "model 999 not found" in r.stderr


def test_model_page_lists_packages_and_publishes(hub):
    app = create_app(load_settings(hub.home, env={}))
    try:
        client = app.test_client()
        html = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
        client.post("/login", data={"username": "admin", "password": "password1", "csrf_token": token})
        page = client.get(f"/models/{hub.model_id}").get_data(as_text=True)
        assert "Packages for edge devices" in page and "openvino-int8" in page and "download" in page
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        resp = client.post(f"/models/{hub.model_id}/packages", data={"csrf_token": token, "targets": ["onnx-fp32"],
                                                                     "val_version": "2", "max_drop": "2"})
        assert resp.status_code == 302 and "/jobs/" in resp.headers["Location"]
        pkg = client.get(f"/api/v1/models/{hub.model_id}/packages").get_json()["packages"][0]
        data = client.get(f"/api/v1/packages/{pkg['id']}/download").data
        assert data[:2] == b"PK"
        published = client.post(f"/packages/{pkg['id']}/publish", data={"csrf_token": token})
        assert published.status_code == 302 and "/algorithms/" in published.headers["Location"]
        algo_page = client.get(published.headers["Location"]).get_data(as_text=True)
        assert pkg["target"] in algo_page
    finally:
        app.extensions["ymir"].close()
