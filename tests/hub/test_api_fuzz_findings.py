"""Regression tests for the 500s schemathesis found fuzzing the API (tests/hub/test_openapi.py): each is now a
clear 4xx in the one error shape."""

from __future__ import annotations

import io

import pytest
from hub_helpers import wait_ready

HUGE = 2**70  # beyond SQLite's 64-bit INTEGER: it raised OverflowError inside the queries


def _error(r, status: int, code: str) -> dict:
    data = r.get_json()
    assert r.status_code == status and data["code"] == code, (r.status_code, data)
    return data


def test_a_non_ascii_label_studio_image_token_is_refused_not_a_crash(app):
    # hmac.compare_digest raised TypeError on a str with non-ASCII characters
    r = app.test_client().get(f"/api/v1/labeling/tasks/1/ls-images/%C3%9C%C3%9C/{'a' * 40}")
    _error(r, 403, "forbidden")


def test_a_non_ascii_csrf_token_is_refused_not_a_crash(client):
    r = client.post("/api/v1/projects", json={"name": "p"}, headers={"X-CSRF-Token": "é" * 8})
    _error(r, 403, "forbidden")


def test_a_device_token_used_under_a_non_ascii_device_id_is_refused_not_a_crash(api):
    token = api.post("/api/v1/devices", json={"id": "cam-1"}).get_json()["token"]
    r = api.c.post("/api/v1/devices/%C3%A9/captures", headers={"Authorization": f"Bearer {token}"})
    _error(r, 403, "forbidden")


@pytest.mark.parametrize("url", [f"/api/v1/versions/{HUGE}", f"/api/v1/versions/{HUGE}/analysis",
                                 f"/api/v1/labeling/tasks/{HUGE}", f"/api/v1/algorithms/{HUGE}"])
def test_ids_beyond_sqlite_in_the_url_are_not_found(api, url):
    _error(api.get(url), 404, "not_found")


@pytest.mark.parametrize(("method", "url", "data"), [
    ("post", "/api/v1/projects/1/labeling/tasks", {"version_id": HUGE}),
    ("post", "/api/v1/versions/1/merge", {"guests": [HUGE]}),
    ("post", "/api/v1/infer", {"model_id": HUGE, "version_ids": [1]}),
    ("post", "/api/v1/projects/1/mining/prepare", {"version_ids": [HUGE]}),
    ("post", "/api/v1/evaluations", {"pred_version_id": HUGE}),
    ("get", f"/api/v1/projects/1/sample-balance?version={HUGE}", None),
    ("get", f"/api/v1/diagnosis?pred={HUGE}", None),
])
def test_numbers_beyond_sqlite_in_bodies_and_queries_are_bad_input(api, sample_zip, method, url, data):
    for c in ("circle", "square", "triangle"):
        api.post("/api/v1/classes", json={"name": c})
    assert api.post("/api/v1/projects", json={"name": "p"}).status_code == 201
    r = api.post("/api/v1/projects/1/datasets/import", content_type="multipart/form-data",
                 data={"file": (io.BytesIO(sample_zip.read_bytes()), "s.zip")})
    assert wait_ready(api, r.get_json()["version_id"])["state"] == "ready"  # version 1: the id is real
    r = getattr(api, method)(url, **({"json": data} if data is not None else {}))
    assert "out of range" in _error(r, 400, "bad_input")["error"]
