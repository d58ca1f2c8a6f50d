"""Training through the JSON API of a running hub: its own runner thread picks the job up."""

from __future__ import annotations

import io
import tarfile
import time

import pytest
from hub_helpers import shapes_hub

from hub import create_app
from hub.config import load_settings
from hub.store import users as user_store


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("ws")
    shapes_hub(home, sets=(("train", 16, 3), ("val", 6, 4)))
    app = create_app(load_settings(home, env={}))
    database = app.extensions["ymir"].database
    admin = user_store.get_user_by_name(database, "admin")
    token = user_store.create_token(database, admin["id"], "tests")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    yield client
    app.extensions["ymir"].close()


def _wait(client, job_id, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job['state']}")


def test_train_from_the_api_and_download_the_model(api):
    balance = api.get("/api/v1/projects/shapes/sample-balance?version=1").json
    assert balance["images"] == 16 and set(balance["classes"]) == {"circle", "square", "triangle"}
    assert all(v["positive"] + v["negative"] == 16 for v in balance["classes"].values())

    resp = api.post("/api/v1/projects/shapes/train", json={"train_version_id": 1, "val_version_id": 2,
                                                          "config": {"epochs": 1, "input_size": 128}})
    assert resp.status_code == 202, resp.json
    job = _wait(api, resp.json["id"])
    assert job["state"] == "done", job
    assert job["monitor"], "monitor history is served for the progress chart"
    models = api.get("/api/v1/models?project=shapes").json["models"]
    assert models[0]["model_id"] == job["result"]["model_id"]
    data = api.get(f"/api/v1/models/{models[0]['model_id']}/download").data
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert "ymir-info.yaml" in tar.getnames()

    infer = api.post("/api/v1/infer", json={"model_ids": [models[0]["model_id"]], "version_ids": [2]})
    assert infer.status_code == 202
    done = _wait(api, infer.json["jobs"][0]["id"])
    assert done["state"] == "done" and done["result"]["version_id"]


@pytest.mark.parametrize(
    "payload, status, code",
    [
        ({"val_version_id": 2}, 400, "bad_input"),
        ({"train_version_id": 1, "val_version_id": 999}, 404, "not_found"),
        ({"train_version_id": 1, "val_version_id": 2, "image": "missing"}, 404, "not_found"),
        ({"train_version_id": 1, "val_version_id": 2, "gpu_count": 2}, 400, "bad_input"),
    ],
)
def test_bad_training_requests_get_one_error_shape(api, payload, status, code):
    resp = api.post("/api/v1/projects/shapes/train", json=payload)
    assert resp.status_code == status
    assert set(resp.json) == {"error", "code"} and resp.json["code"] == code


def test_cancel_and_logs(api):
    resp = api.post("/api/v1/projects/shapes/train", json={"train_version_id": 1, "val_version_id": 2,
                                                          "config": {"epochs": 50}})
    job_id = resp.json["id"]
    cancelled = api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    final = _wait(api, job_id)
    assert final["state"] == "cancelled"
    assert api.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 409
    assert "log" in api.get(f"/api/v1/jobs/{job_id}/logs").json


def _page_client(api):
    import re

    client = api.application.test_client()
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    resp = client.post("/login", data={"username": "admin", "password": "password1", "csrf_token": token})
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:300]
    html = client.get("/jobs").get_data(as_text=True)  # the session (and its token) changes at login
    return client, re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def test_training_pages_start_a_job_and_show_it(api):
    client, token = _page_client(api)
    form = client.get("/projects/1/training").get_data(as_text=True)
    for needle in ("Calculate positive/negative samples", 'name="hp_epochs"', "longest-edge scaling",
                   'name="val_version"', 'name="pretrained"'):
        assert needle in form
    resp = client.post("/projects/1/training", data={
        "csrf_token": token, "image": "ymir-edge/executor", "train_version": "1", "val_version": "2",
        "targets": ["circle", "square"], "hp_epochs": "1", "hp_input_size": "128", "hp_augment_flip": "on"})
    assert resp.status_code == 302 and "/jobs/" in resp.headers["Location"]
    job_id = resp.headers["Location"].rsplit("/", 1)[1]
    job = _wait(api, job_id)
    assert job["state"] == "done", job
    assert job["params"]["targets"] == ["circle", "square"]
    assert job["params"]["config"]["epochs"] == 1 and "augment_color_jitter" in job["params"]["config"]
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "history-chart" in page and "Model:" in page and "monitor-chart" in page
    models = client.get("/projects/1/models").get_data(as_text=True)
    assert "best" in models and "download" in models
    model_id = job["result"]["model_id"]
    assert "Training process" in client.get(f"/models/{model_id}").get_data(as_text=True)
    assert job_id in client.get("/jobs").get_data(as_text=True)
    assert "ymir-edge/executor" in client.get("/admin/images").get_data(as_text=True)
    bad = client.post("/projects/1/training", data={"csrf_token": token, "train_version": "1",
                                                    "val_version": "2", "gpu_count": "1"})
    assert bad.status_code == 302 and "/training" in bad.headers["Location"]
    assert "cannot assign GPUs" in client.get("/projects/1/training").get_data(as_text=True)

    package = client.get(f"/api/v1/models/{model_id}/download").data
    resp = client.post("/projects/1/models/import", content_type="multipart/form-data", data={
        "csrf_token": token, "name": "imported", "file": (io.BytesIO(package), "exported.tar.gz")})
    assert resp.status_code == 302 and "/models/" in resp.headers["Location"], resp.get_data(as_text=True)[:300]
    imported = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "imported v1" in imported and "Training process" in imported
