"""The labeling JSON API: routes, auth (Bearer token, session + CSRF), error shape, paging, leases, sync."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_tasks_helpers import create_task, labeling_project  # noqa: E402


@pytest.fixture
def lab(api, tmp_path):
    return labeling_project(api, tmp_path)


def test_task_routes_and_the_oracle_flow(api, lab):
    t = create_task(api, "lab", lab["version_id"], name="first", assignees=["admin"])
    assert {"id", "project_id", "version_id", "name", "classes", "backend", "state", "images_total", "images_done",
            "result_version_id", "guideline", "assignees", "backend_state"} <= set(t)
    assert t["assignees"] == ["admin"] and t["name"] == "first"
    second = create_task(api, "lab", lab["version_id"], classes=["circle"])
    listed = api.get("/api/v1/projects/lab/labeling/tasks").get_json()["tasks"]
    assert [x["id"] for x in listed] == [second["id"], t["id"]]
    assert api.get(f"/api/v1/projects/{t['project_id']}/labeling/tasks").get_json()["tasks"] == listed

    page = api.get(f"/api/v1/labeling/tasks/{t['id']}/images?offset=1&limit=2").get_json()
    assert page["total"] == 4 and len(page["images"]) == 2
    everything = api.get(f"/api/v1/labeling/tasks/{t['id']}/images").get_json()["images"]
    assert [i["sha1"] for i in everything[1:3]] == [i["sha1"] for i in page["images"]]
    assert {"sha1", "width", "height", "state", "boxes", "source"} <= set(everything[0])

    # what the iteration loop's oracle does: PUT every image, then finish
    for img in everything:
        boxes = [{k: b[k] for k in ("x1", "y1", "x2", "y2", "class")} for b in img["boxes"]]
        r = api.put(f"/api/v1/labeling/tasks/{t['id']}/images/{img['sha1']}", json={"boxes": boxes, "done": True})
        assert r.status_code == 200, r.get_json()
    assert api.get(f"/api/v1/labeling/tasks/{t['id']}").get_json()["images_done"] == 4
    done = api.post(f"/api/v1/labeling/tasks/{t['id']}/finish", json={"name": "labeled-set"})
    assert done.status_code == 200, done.get_json()
    v = api.get(f"/api/v1/versions/{done.get_json()['result_version_id']}").get_json()
    assert v["group_name"] == "labeled-set" and v["gt_boxes"] == 2  # a's circle, b's square (no dog)


def test_next_leases_and_sync(api, lab):
    t = create_task(api, "lab", lab["version_id"])
    first = api.post(f"/api/v1/labeling/tasks/{t['id']}/next", json={}).get_json()["sha1"]
    assert first == sorted(lab["sha1"].values())[0]
    state = api.get(f"/api/v1/labeling/tasks/{t['id']}/images/{first}").get_json()
    assert state["lease"] and state["lease"]["until"] > 0
    second = api.post(f"/api/v1/labeling/tasks/{t['id']}/next", json={"after": first}).get_json()["sha1"]
    assert second and second != first
    assert api.get(f"/api/v1/labeling/tasks/{t['id']}/images/{first}").get_json()["lease"] is None  # let go
    r = api.post(f"/api/v1/labeling/tasks/{t['id']}/sync")
    assert r.status_code == 200 and r.get_json()["backend"] == "builtin" and r.get_json()["images"] == 0


def test_errors_have_the_house_shape(api, lab, app):
    t = create_task(api, "lab", lab["version_id"])
    r = app.test_client().get(f"/api/v1/labeling/tasks/{t['id']}")
    assert r.status_code == 401 and r.get_json()["code"] == "unauthorized"
    for method, url, kw, status in (
        ("get", "/api/v1/labeling/tasks/999", {}, 404),
        ("get", f"/api/v1/labeling/tasks/{t['id']}/images/{'0' * 40}", {}, 404),
        ("get", f"/api/v1/labeling/tasks/{t['id']}/images?limit=0", {}, 400),
        ("get", f"/api/v1/labeling/tasks/{t['id']}/guideline", {}, 404),
        ("post", "/api/v1/projects/nope/labeling/tasks", {"json": {"version_id": lab["version_id"]}}, 404),
        ("post", "/api/v1/projects/lab/labeling/tasks", {"json": {}}, 400),
        ("post", "/api/v1/projects/lab/labeling/tasks", {"json": {"version_id": 999}}, 404),
        ("put", f"/api/v1/labeling/tasks/{t['id']}/images/{lab['sha1']['a']}", {"json": {"done": True}}, 400),
        ("post", f"/api/v1/labeling/tasks/{t['id']}/import", {}, 400),
        ("post", f"/api/v1/labeling/tasks/{t['id']}/guideline", {}, 400),
    ):
        r = getattr(api, method)(url, **kw)
        assert r.status_code == status, (url, r.status_code, r.get_json())
        body = r.get_json()
        assert set(body) == {"error", "code"} and body["error"], body
    other = api.post("/api/v1/projects", json={"name": "other", "classes": ["circle"]})
    assert other.status_code == 201, other.get_json()
    r = api.post("/api/v1/projects/other/labeling/tasks", json={"version_id": lab["version_id"]})
    assert r.status_code == 400 and "not in project" in r.get_json()["error"]


def test_the_session_cookie_needs_the_csrf_header(client, api, lab):
    t = create_task(api, "lab", lab["version_id"])
    url = f"/api/v1/labeling/tasks/{t['id']}/images/{lab['sha1']['c']}"
    assert client.get(url).status_code == 200
    r = client.put(url, json={"boxes": [], "done": True})
    assert r.status_code == 403 and r.get_json()["code"] == "forbidden"
    r = client.put(url, json={"boxes": [], "done": True}, headers={"X-CSRF-Token": client.csrf})
    assert r.status_code == 200 and r.get_json()["state"] == "done"
    assert r.get_json()["updated_by"] == 1
    assert r.get_json()["lease"]["username"] == "admin"  # saving holds (renews) the saver's lease
