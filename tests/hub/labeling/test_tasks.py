"""Labeling tasks through the API on a real workspace: states, progress, leases, bad boxes, the new version."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "iterations"))
from iteration_helpers import scenario_project  # noqa: E402

SMALL = {"train": 6, "pool": 5, "val": 3, "test": 3}


@pytest.fixture
def task(api, tmp_path):
    al = scenario_project(api, tmp_path / "scen", sizes=SMALL)
    r = api.post("/api/v1/projects/al/labeling/tasks", json={"version_id": al["pool"], "name": "pool"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_label_images_then_finish_makes_a_version(api, task, app, workspace):
    tid = task["id"]
    assert task["state"] == "open" and task["images_total"] == SMALL["pool"] and task["images_done"] == 0
    assert task["classes"] == ["circle", "square", "triangle"]
    images = api.get(f"/api/v1/labeling/tasks/{tid}/images").get_json()["images"]
    a, b = images[0], images[1]
    box = {"x1": 10, "y1": 12, "x2": 40.5, "y2": 50, "class": "Square"}
    r = api.put(f"/api/v1/labeling/tasks/{tid}/images/{a['sha1']}", json={"boxes": [box], "done": True})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["boxes"][0]["class"] == "square" and r.get_json()["state"] == "done"
    r = api.put(f"/api/v1/labeling/tasks/{tid}/images/{b['sha1']}", json={"boxes": [], "done": True})
    assert r.status_code == 200  # "no objects"
    t = api.get(f"/api/v1/labeling/tasks/{tid}").get_json()
    assert t["state"] == "in_progress" and t["images_done"] == 2

    # bad boxes: a clear error, nothing stored
    for bad, words in (({**box, "class": "hexagon"}, "not one of the task's classes"),
                       ({**box, "x2": 10}, "zero size"), ({**box, "x1": "a"}, "numbers")):
        r = api.put(f"/api/v1/labeling/tasks/{tid}/images/{a['sha1']}", json={"boxes": [bad]})
        assert r.status_code == 400 and words in r.get_json()["error"], r.get_json()
    assert api.get(f"/api/v1/labeling/tasks/{tid}/images/{a['sha1']}").get_json()["boxes"][0]["x2"] == 40.5
    # out of the image: clipped
    r = api.put(f"/api/v1/labeling/tasks/{tid}/images/{a['sha1']}",
                json={"boxes": [{**box, "x2": 1e6}, box], "done": True})
    assert r.get_json()["boxes"][0]["x2"] == a["width"]

    done = api.post(f"/api/v1/labeling/tasks/{tid}/finish").get_json()
    assert done["state"] == "done" and done["result_version_id"]
    v = api.get(f"/api/v1/versions/{done['result_version_id']}").get_json()
    assert v["operation"] == "label" and v["images"] == SMALL["pool"] and v["gt_boxes"] == 2
    assets = api.get(f"/api/v1/versions/{v['id']}/assets?limit=50").get_json()["assets"]
    assert sum(x["gt_count"] for x in assets) == 2
    r = api.put(f"/api/v1/labeling/tasks/{tid}/images/{a['sha1']}", json={"boxes": []})
    assert r.status_code == 409 and "done" in r.get_json()["error"]


def test_two_users_never_get_the_same_image(api, task, workspace):
    from hub import auth
    from hub.labeling import tasks
    from hub.store import users

    auth.add_user(workspace.database, "bob", "bob-password-1", "user")
    bob = users.get_user_by_name(workspace.database, "bob")["id"]
    admin = users.get_user_by_name(workspace.database, "admin")["id"]
    first = tasks.lease_next(workspace, task["id"], admin)
    other = tasks.lease_next(workspace, task["id"], bob)
    assert first and other and first != other
    with pytest.raises(Exception, match="another user"):
        tasks.save_labels(workspace, task["id"], first, [], user_id=bob)
    # asking again hands back one's own lease's successor; an expired lease frees the image
    tasks.lease_next(workspace, task["id"], admin, ttl=-1)
    taken = {tasks.lease_next(workspace, task["id"], bob)}
    assert taken and None not in taken


def test_guideline_upload_and_errors(api, task):
    tid = task["id"]
    r = api.post(f"/api/v1/labeling/tasks/{tid}/guideline", data={"file": (io.BytesIO(b"# Rules\nbox all"), "g.md")},
                 content_type="multipart/form-data")
    assert r.status_code == 200 and r.get_json()["guideline"] == "g.md"
    assert b"box all" in api.get(f"/api/v1/labeling/tasks/{tid}/guideline").data
    r = api.post(f"/api/v1/labeling/tasks/{tid}/guideline", data={"file": (io.BytesIO(b"x"), "g.exe")},
                 content_type="multipart/form-data")
    assert r.status_code == 400
    r = api.post("/api/v1/projects/al/labeling/tasks", json={"version_id": task["version_id"], "classes": ["nope"]})
    assert r.status_code in (400, 404) and "nope" in r.get_json()["error"]
    assert api.post(f"/api/v1/labeling/tasks/{tid}/cancel").get_json()["state"] == "cancelled"
