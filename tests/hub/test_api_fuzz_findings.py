"""Regression tests for the 500s schemathesis found fuzzing the API (tests/hub/test_openapi.py): each is now a
clear 4xx in the one error shape."""

from __future__ import annotations

import io

import pytest
from hub_helpers import wait_ready

HUGE = 2**70  # beyond SQLite's 64-bit INTEGER: it raised OverflowError inside the queries


def _seed(api, sample_zip) -> None:
    """Classes, project 1 with them as targets, and version 1 (the 12-image sample), ready."""
    for c in ("circle", "square", "triangle"):
        api.post("/api/v1/classes", json={"name": c})
    assert api.post("/api/v1/projects", json={"name": "p", "classes": ["circle", "square"]}).status_code == 201
    r = api.post("/api/v1/projects/1/datasets/import", content_type="multipart/form-data",
                 data={"file": (io.BytesIO(sample_zip.read_bytes()), "s.zip")})
    assert wait_ready(api, r.get_json()["version_id"])["state"] == "ready"


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
    _seed(api, sample_zip)  # version 1: the id is real
    r = getattr(api, method)(url, **({"json": data} if data is not None else {}))
    assert "out of range" in _error(r, 400, "bad_input")["error"]


# --- found probing by hand beside schemathesis (its strings hold no lone surrogates, its numbers stay finite) ---


def _raw(api, method: str, url: str, text: str):
    return getattr(api, method)(url, data=text, content_type="application/json")


@pytest.mark.parametrize(("url", "text", "field"), [
    ("/api/v1/classes", '{"name": "\\ud800"}', "field 'name'"),
    ("/api/v1/projects", '{"name": "p", "description": "x\\udfff"}', "field 'description'"),
    ("/api/v1/classes", '{"name": "a", "aliases": ["b", "\\ud800"]}', "field 'aliases[1]'"),
])
def test_a_lone_surrogate_in_a_json_string_is_bad_input(api, url, text, field):
    # json.loads accepts the escape; SQLite raised UnicodeEncodeError when binding the string
    data = _error(_raw(api, "post", url, text), 400, "bad_input")
    assert data["error"].startswith(field) and "Unicode" in data["error"]


def test_non_finite_numbers_in_a_body_are_bad_input_not_stored(api, sample_zip):
    # Python's JSON reads NaN/Infinity: a training job was queued with timeout_s NaN
    _seed(api, sample_zip)
    text = '{"train_version_id": 1, "val_version_id": 1, "timeout_s": NaN}'
    assert "finite" in _error(_raw(api, "post", "/api/v1/projects/1/train", text), 400, "bad_input")["error"]
    text = '{"count": 1, "ratio": Infinity}'
    assert "finite" in _error(_raw(api, "post", "/api/v1/versions/1/sample", text), 400, "bad_input")["error"]
    assert api.get("/api/v1/jobs?kind=train").get_json()["jobs"] == []


def test_a_box_coordinate_too_big_for_a_float_is_bad_input(api, sample_zip):
    _seed(api, sample_zip)
    assert api.post("/api/v1/projects/1/labeling/tasks", json={"version_id": 1}).status_code == 201
    sha1 = api.get("/api/v1/labeling/tasks/1/images").get_json()["images"][0]["sha1"]
    text = '{"boxes": [{"x1": 1%s, "y1": 0, "x2": 5, "y2": 5, "class": "circle"}]}' % ("0" * 400)
    r = _raw(api, "put", f"/api/v1/labeling/tasks/1/images/{sha1}", text)  # float() raised OverflowError
    assert "box 0" in _error(r, 400, "bad_input")["error"]
