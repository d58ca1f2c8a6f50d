"""One JSON error shape across the API: {"error": message, "code": code} with the real status."""

from __future__ import annotations

import pytest


def _shape(r, status, code):
    assert r.status_code == status, r.get_data(as_text=True)
    body = r.get_json()
    assert set(body) == {"error", "code"}, body
    assert body["code"] == code and isinstance(body["error"], str) and body["error"]
    return body


@pytest.mark.parametrize(
    "method,url,kwargs,status,code",
    [
        ("get", "/api/v1/no-such-route", {}, 404, "not_found"),
        ("get", "/api/v1/projects/999", {}, 404, "not_found"),
        ("get", "/api/v1/versions/999", {}, 404, "not_found"),
        ("post", "/api/v1/projects", {"json": {}}, 400, "bad_input"),
        ("post", "/api/v1/projects", {"data": "not json", "content_type": "application/json"}, 400, "bad_input"),
        ("post", "/api/v1/projects", {"json": {"name": 5}}, 400, "bad_input"),
        ("post", "/api/v1/classes", {"json": {"name": "a,b"}}, 400, "bad_input"),
        ("delete", "/api/v1/health", {}, 405, "method_not_allowed"),
        ("get", "/api/v1/versions/1/assets?limit=abc", {}, 400, "bad_input"),
        ("post", "/api/v1/projects/1/datasets/import", {"json": {"source": "path", "value": "../../etc"}}, 400,
         "bad_input"),
        ("post", "/api/v1/projects/1/datasets/import", {"json": {"source": "ftp", "value": "x"}}, 400, "bad_input"),
    ],
)
def test_error_shape(api, method, url, kwargs, status, code):
    api.post("/api/v1/projects", json={"name": "p1"})
    api.post("/api/v1/projects/1/datasets/import", json={})  # noise: must not break anything
    _shape(getattr(api, method)(url, **kwargs), status, code)


def test_unauthorized_and_conflict_shapes(app, api):
    _shape(app.test_client().get("/api/v1/projects"), 401, "unauthorized")
    _shape(app.test_client().post("/api/v1/classes", json={"name": "x"}), 401, "unauthorized")
    assert api.post("/api/v1/classes", json={"name": "car"}).status_code == 201
    body = _shape(api.post("/api/v1/classes", json={"name": " Car"}), 409, "conflict")
    assert "car" in body["error"]


def test_too_large_upload_shape(workspace):
    from hub import create_app
    from hub.store import users as user_store

    app = create_app(workspace.settings.with_(max_upload_bytes=1024))
    try:
        tok = user_store.create_token(workspace.database, 1)
        data = {"file": (__import__("io").BytesIO(b"x" * (3 * 1024 * 1024)), "big.zip")}
        r = app.test_client().post("/api/v1/projects/1/datasets/import", data=data,
                                   headers={"Authorization": f"Bearer {tok}"}, content_type="multipart/form-data")
        _shape(r, 413, "too_large")
    finally:
        app.extensions["ymir"].close()


def test_pages_render_errors_as_html(client):
    r = client.get("/projects/12345")
    assert r.status_code == 404 and b"not found" in r.data and r.mimetype == "text/html"
