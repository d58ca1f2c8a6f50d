"""Labeling tasks on a real workspace: states, progress, pre-annotations, leases, bad boxes, the labeled version."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_tasks_helpers import create_task, labeling_project  # noqa: E402

from detkit.errors import BadInput, Conflict, NotFound  # noqa: E402

BOX = {"x1": 10, "y1": 12, "x2": 40.5, "y2": 30, "class": "Square"}


@pytest.fixture
def lab(api, tmp_path):
    return labeling_project(api, tmp_path)


@pytest.fixture
def task(api, lab):
    return create_task(api, "lab", lab["version_id"], name="pool")


def _images(api, tid):
    return {i["sha1"]: i for i in api.get(f"/api/v1/labeling/tasks/{tid}/images").get_json()["images"]}


def _gt(api, version_id):
    assets = api.get(f"/api/v1/versions/{version_id}/assets?limit=50").get_json()["assets"]
    return {a["sha1"]: a for a in assets}


def test_a_new_task_shows_predictions_of_its_classes_as_pre_annotations(api, lab, task):
    assert task["state"] == "open" and task["images_total"] == 4 and task["images_done"] == 0
    assert task["classes"] == ["circle", "square", "triangle"]  # the project's targets
    assert task["backend"] == "builtin" and task["result_version_id"] is None
    images = _images(api, task["id"])
    a = images[lab["sha1"]["a"]]
    assert a["source"] == "prediction" and a["state"] == "pending" and (a["width"], a["height"]) == (64, 48)
    assert [b["class"] for b in a["boxes"]] == ["circle"]  # "dog" is not a class of the task
    assert a["boxes"][0]["source"] == "prediction" and a["boxes"][0]["x1"] == 3
    assert images[lab["sha1"]["c"]]["source"] == "none" and images[lab["sha1"]["c"]]["boxes"] == []
    one = api.get(f"/api/v1/labeling/tasks/{task['id']}/images/{lab['sha1']['a']}").get_json()
    assert one["filename"] == "a.jpg" and one["tags"] == {"mining_score": "0.91"} and one["lease"] is None
    plain = create_task(api, "lab", lab["version_id"], pre_annotations=False)
    assert all(i["source"] == "none" for i in _images(api, plain["id"]).values())


def test_classes_resolve_aliases_and_unknown_ones_are_refused(api, lab):
    assert api.post("/api/v1/classes/circle/aliases", json={"alias": "Kreis"}).status_code == 201
    t = create_task(api, "lab", lab["version_id"], classes=["kreis", "square", "Circle"])
    assert t["classes"] == ["circle", "square"]
    r = api.post("/api/v1/projects/lab/labeling/tasks", json={"version_id": lab["version_id"], "classes": ["nope"]})
    assert r.status_code in (400, 404) and "nope" in r.get_json()["error"]
    r = api.post("/api/v1/projects/lab/labeling/tasks", json={"version_id": lab["version_id"], "backend": "cvat"})
    assert r.status_code == 400 and "cvat" in r.get_json()["error"]
    r = api.post("/api/v1/projects/lab/labeling/tasks", json={"version_id": lab["version_id"], "assignees": ["zed"]})
    assert r.status_code == 400 and "zed" in r.get_json()["error"]


def test_label_then_finish_makes_a_version_with_sources(api, lab, task):
    tid, s = task["id"], lab["sha1"]
    # a: the pre-annotation kept untouched (source prediction) plus a drawn box
    pre = _images(api, tid)[s["a"]]["boxes"][0]
    r = api.put(f"/api/v1/labeling/tasks/{tid}/images/{s['a']}", json={"boxes": [pre, BOX], "done": True})
    assert r.status_code == 200, r.get_json()
    saved = r.get_json()
    assert saved["state"] == "done" and saved["source"] == "saved"
    assert [(b["class"], b["source"]) for b in saved["boxes"]] == [("circle", "prediction"), ("square", "human")]
    # c: no objects
    assert api.put(f"/api/v1/labeling/tasks/{tid}/images/{s['c']}", json={"boxes": [], "done": True}).status_code == 200
    # d: saved but not marked done
    r = api.put(f"/api/v1/labeling/tasks/{tid}/images/{s['d']}",
                json={"boxes": [{"x1": 1, "y1": 1, "x2": 5, "y2": 5, "class": "triangle"}], "done": False})
    assert r.get_json()["state"] == "pending"
    t = api.get(f"/api/v1/labeling/tasks/{tid}").get_json()
    assert t["state"] == "in_progress" and (t["images_done"], t["images_total"]) == (2, 4)
    assert t["guideline"] is None

    done = api.post(f"/api/v1/labeling/tasks/{tid}/finish", json={"name": "labeled"}).get_json()
    assert done["state"] == "done" and done["result_version_id"] and done["finished_at"]
    v = api.get(f"/api/v1/versions/{done['result_version_id']}").get_json()
    assert v["operation"] == "label" and v["state"] == "ready" and v["images"] == 4 and v["gt_boxes"] == 3
    assert v["parent_ids"] == [lab["version_id"]] and v["source"]["task_id"] == tid
    assert v["report"]["unlabeled_images"] == 1 and v["report"]["saved_not_done_images"] == 1
    gt = _gt(api, v["id"])
    assert gt[s["b"]]["gt_count"] == 0  # b was never saved: no GT without accept_predictions
    boxes = {(b["class"], b["tags"]["source"]) for b in gt[s["a"]]["boxes"] if b["kind"] == "gt"}
    assert boxes == {("circle", "prediction"), ("square", "human")}
    assert gt[s["a"]]["tags"] == {"mining_score": "0.91"}  # asset tags copied
    # a finished task cannot change any more
    r = api.put(f"/api/v1/labeling/tasks/{tid}/images/{s['a']}", json={"boxes": []})
    assert r.status_code == 409 and "done" in r.get_json()["error"]
    assert api.post(f"/api/v1/labeling/tasks/{tid}/finish").status_code == 409
    assert api.post(f"/api/v1/labeling/tasks/{tid}/cancel").status_code == 409


def test_finish_accepting_predictions(api, lab, task):
    tid, s = task["id"], lab["sha1"]
    done = api.post(f"/api/v1/labeling/tasks/{tid}/finish", json={"accept_predictions": True}).get_json()
    v = api.get(f"/api/v1/versions/{done['result_version_id']}").get_json()
    assert v["gt_boxes"] == 2 and v["report"]["accepted_prediction_images"] == 2
    assert v["group_id"] == api.get(f"/api/v1/versions/{lab['version_id']}").get_json()["group_id"]
    gt = _gt(api, v["id"])
    assert [b["tags"] for b in gt[s["b"]]["boxes"] if b["kind"] == "gt"] == [{"source": "prediction"}]


def test_bad_boxes_are_refused_and_nothing_is_stored(api, lab, task):
    tid, sha1 = task["id"], lab["sha1"]["a"]
    assert api.put(f"/api/v1/labeling/tasks/{tid}/images/{sha1}", json={"boxes": [BOX]}).status_code == 200
    for bad, words in (({**BOX, "class": "hexagon"}, "not one of the task's classes"),
                       ({**BOX, "class": "dog"}, "not one of the task's classes"),
                       ({**BOX, "x2": 10}, "zero size"),
                       ({**BOX, "x2": 1e6}, "outside the 64x48 image"),
                       ({**BOX, "y1": -5}, "outside"),
                       ({**BOX, "x1": 50}, "x2/y2 must not be less"),
                       ({**BOX, "x1": "a"}, "numbers"),
                       ({**BOX, "x1": float("nan")}, "not finite")):
        r = api.put(f"/api/v1/labeling/tasks/{tid}/images/{sha1}", json={"boxes": [BOX, bad]})
        assert r.status_code == 400, (bad, r.get_json())
        err = r.get_json()["error"]
        assert words in err and "box 1" in err and sha1 in err, err
    r = api.put(f"/api/v1/labeling/tasks/{tid}/images/{sha1}", json={"boxes": "x"})
    assert r.status_code == 400
    assert api.put(f"/api/v1/labeling/tasks/{tid}/images/{sha1}", json={}).status_code == 400
    state = api.get(f"/api/v1/labeling/tasks/{tid}/images/{sha1}").get_json()
    assert [b["x2"] for b in state["boxes"]] == [40.5]
    # within a pixel of the border (drag rounding): clipped, not refused
    r = api.put(f"/api/v1/labeling/tasks/{tid}/images/{sha1}", json={"boxes": [{**BOX, "x2": 64.6}]})
    assert r.status_code == 200 and r.get_json()["boxes"][0]["x2"] == 64
    assert api.put(f"/api/v1/labeling/tasks/{tid}/images/{'0' * 40}", json={"boxes": []}).status_code == 404


def test_leases_keep_two_users_apart_and_expire(api, lab, task, workspace):
    from hub import auth
    from hub.labeling import tasks
    from hub.store import users

    auth.add_user(workspace.database, "bob", "bob-password-1", "user")
    bob = users.get_user_by_name(workspace.database, "bob")["id"]
    admin = users.get_user_by_name(workspace.database, "admin")["id"]
    tid = task["id"]
    held = {}
    for _ in range(2):  # each asks twice: never the other's image
        held["admin"] = tasks.lease_next(workspace, tid, admin, after=held.get("admin"))
        held["bob"] = tasks.lease_next(workspace, tid, bob, after=held.get("bob"))
        assert held["admin"] and held["bob"] and held["admin"] != held["bob"]
    with pytest.raises(Conflict, match=r"another user \(admin"):
        tasks.save_labels(workspace, tid, held["admin"], [], user_id=bob)
    lease = tasks.image_state(workspace.database, tid, held["admin"])["lease"]
    assert lease["user_id"] == admin and lease["until"] > 0
    # the four images, all leased or done: nobody else gets one
    tasks.save_labels(workspace, tid, held["bob"], [], user_id=bob)
    nxt = tasks.lease_next(workspace, tid, bob, after=held["bob"])
    assert nxt not in (held["admin"], held["bob"])
    # an expired lease frees its image for another user
    expired = tasks.lease_next(workspace, tid, admin, after=held["admin"], ttl=-1)
    assert expired
    got = set()
    for _ in range(3):
        got.add(tasks.lease_next(workspace, tid, bob, after=max(got) if got else None))
    assert expired in got
    tasks.save_labels(workspace, tid, expired, [], user_id=bob)  # no live lease of admin's any more
    # nothing pending, or the task is over: no image to hand out
    for sha1 in lab["sha1"].values():
        tasks.save_labels(workspace, tid, sha1, [], user_id=None)
    assert tasks.lease_next(workspace, tid, admin) is None


def test_apply_imported_reports_box_by_box(workspace, lab, task):
    from hub.labeling import tasks

    tid, s = task["id"], lab["sha1"]
    tasks.save_labels(workspace, tid, s["d"], [{**BOX, "class": "triangle"}])
    report = tasks.apply_imported(workspace, tid, {
        s["a"]: [BOX, {**BOX, "class": "hexagon"}, {**BOX, "x2": 100}, {**BOX, "x2": 10}],
        s["b"]: [],
        "f" * 40: [BOX],
    })
    assert report["images"] == 2 and report["boxes"] == 2 and report["skipped_images"] == ["f" * 40]
    by = {f["sha1"]: f for f in report["files"]}
    problems = " | ".join(by[s["a"]]["problems"])
    assert "hexagon" in problems and "clipped" in problems and "zero size" in problems, problems
    state = tasks.image_state(workspace.database, tid, s["a"])
    assert state["state"] == "done" and [b["x2"] for b in state["boxes"]] == [40.5, 64]
    # an export of another task: nothing saved, the earlier labels stay
    with pytest.raises(BadInput, match="another task"):
        tasks.apply_imported(workspace, tid, {"e" * 40: []})
    assert tasks.image_state(workspace.database, tid, s["d"])["boxes"][0]["class"] == "triangle"


def test_guideline_upload_cancel_and_errors(api, lab, task, workspace):
    from hub.labeling import tasks

    tid = task["id"]
    r = api.post(f"/api/v1/labeling/tasks/{tid}/guideline", data={"file": (io.BytesIO(b"# Rules\nbox all"), "g.md")},
                 content_type="multipart/form-data")
    assert r.status_code == 200 and r.get_json()["guideline"] == "g.md"
    assert b"box all" in api.get(f"/api/v1/labeling/tasks/{tid}/guideline").data
    for data, name in ((b"x", "g.exe"), (b"not a pdf", "g.pdf")):
        r = api.post(f"/api/v1/labeling/tasks/{tid}/guideline", data={"file": (io.BytesIO(data), name)},
                     content_type="multipart/form-data")
        assert r.status_code == 400, r.get_json()
    with pytest.raises(BadInput, match="10 MB"):
        tasks.set_guideline(workspace, tid, "big.md", b"x" * (10 * 1024 * 1024 + 1))
    pdf = b"%PDF-1.4\n%%EOF\n"
    r = api.post(f"/api/v1/labeling/tasks/{tid}/guideline", data={"file": (io.BytesIO(pdf), "rules.pdf")},
                 content_type="multipart/form-data")
    assert r.get_json()["guideline"] == "rules.pdf"
    got = api.get(f"/api/v1/labeling/tasks/{tid}/guideline")
    assert got.data == pdf and got.mimetype == "application/pdf"
    assert api.post(f"/api/v1/labeling/tasks/{tid}/cancel").get_json()["state"] == "cancelled"
    assert api.post(f"/api/v1/labeling/tasks/{tid}/next", json={}).get_json() == {"sha1": None}
    with pytest.raises(NotFound):
        tasks.get_task(workspace.database, 999)


def test_label_studio_backend_missing_is_a_clear_error(workspace, lab, monkeypatch):
    from hub.labeling import backends, tasks

    monkeypatch.setitem(backends.BACKENDS, "label_studio", "hub.labeling.no_such_module")
    with pytest.raises(BadInput, match="not available"):
        tasks.create_task(workspace, version_id=lab["version_id"], backend="label_studio")
    assert tasks.list_tasks(workspace.database) == []
    assert backends.availability()["builtin"] is None


def test_a_save_racing_the_finish_is_refused(workspace, lab, task):
    from hub.labeling import tasks
    from hub.store import labeling as store

    sha1 = lab["sha1"]["a"]
    tasks.finish_task(workspace, task["id"])
    # the store's own guard (the task checked open, then finished before the write)
    assert store.save_image(workspace.database, task["id"], sha1, [], True, None) is False
    assert store.save_many(workspace.database, task["id"], {sha1: []}, None) is False
    assert tasks.image_state(workspace.database, task["id"], sha1)["source"] == "prediction"
    with pytest.raises(Conflict):
        tasks.apply_imported(workspace, task["id"], {sha1: []})


def test_a_backend_that_fails_to_open_leaves_no_task(workspace, lab, monkeypatch):
    import types

    from hub.labeling import backends, tasks

    def refuse(ws, task):
        raise BadInput("Label Studio at http://127.0.0.1:9 is unreachable")

    fake = types.SimpleNamespace(BACKEND=types.SimpleNamespace(key="label_studio", open=refuse))
    monkeypatch.setitem(sys.modules, "hub.labeling.fake_ls", fake)
    monkeypatch.setitem(backends.BACKENDS, "label_studio", "hub.labeling.fake_ls")
    with pytest.raises(BadInput, match="unreachable"):
        tasks.create_task(workspace, version_id=lab["version_id"], backend="label_studio")
    assert tasks.list_tasks(workspace.database) == []
    assert workspace.database.db.execute("SELECT count(*) FROM labeling_images").fetchone()[0] == 0
