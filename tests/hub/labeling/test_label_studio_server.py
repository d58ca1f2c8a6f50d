"""The Label Studio backend against a real Label Studio server (``label_studio_server``): the hub makes the
project and its tasks with pre-annotations, Label Studio's labelers load the images from the hub through
token links, an annotation submitted through Label Studio's API comes back by sync (and by finish), and a sync
that fails leaves the saved labels as they were."""

from __future__ import annotations

import dataclasses
import sys
import threading
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import label_studio_server  # noqa: E402
from test_tasks_helpers import create_task, labeling_project  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    try:
        server = label_studio_server.start(tmp_path_factory.mktemp("label-studio"))
    except label_studio_server.NotInstalled as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def hub_port():
    return label_studio_server.free_port()


@pytest.fixture
def hub_settings(tmp_path, label_studio, hub_port):
    from hub.config import load_settings

    env = {"YMIR_LABEL_STUDIO_URL": label_studio.url, "YMIR_LABEL_STUDIO_TOKEN": label_studio.token,
           "YMIR_PUBLIC_URL": f"http://127.0.0.1:{hub_port}"}
    return load_settings(tmp_path / "ws", env=env, testing=True, secret_key="test-secret")


@pytest.fixture
def live_hub(app, hub_port):
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", hub_port, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{hub_port}"
    srv.shutdown()
    thread.join(10)


def _ls_tasks(label_studio, project_id: int) -> list[dict]:
    tasks = label_studio.api("GET", "/api/tasks", params={"project": project_id, "page_size": 100})
    tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
    return [label_studio.api("GET", f"/api/tasks/{t['id']}") for t in tasks]


def _rect(x: float, y: float, w: float, h: float, label: str, ow: int = 64, oh: int = 48, **value) -> dict:
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": ow,
            "original_height": oh, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label], **value}}


def test_create_pre_annotate_label_in_label_studio_sync_and_finish(api, app, live_hub, label_studio, tmp_path):
    lab = labeling_project(api, tmp_path)
    task = create_task(api, "lab", lab["version_id"], backend="label_studio", name="in label studio")
    state = task["backend_state"]
    pid = state["project_id"]
    assert state["tasks"] == 4 and state["project_url"] == f"{label_studio.url}/projects/{pid}/data"

    project = label_studio.api("GET", f"/api/projects/{pid}/")
    assert 'name="label"' in project["label_config"] and "triangle" in project["label_config"]
    ls_tasks = {t["data"]["ymir_sha1"]: t for t in _ls_tasks(label_studio, pid)}
    assert set(ls_tasks) == set(lab["sha1"].values())

    # the pre-annotations: a's circle (the dog is no task class: left out), b's square; none for c and d
    def predicted(stem):
        preds = label_studio.api("GET", "/api/predictions/", params={"task": ls_tasks[lab["sha1"][stem]]["id"]})
        return [r["value"]["rectanglelabels"][0] for p in preds for r in p["result"]]

    assert predicted("a") == ["circle"] and predicted("b") == ["square"] and predicted("c") == []
    circle = label_studio.api("GET", "/api/predictions/",
                              params={"task": ls_tasks[lab["sha1"]["a"]]["id"]})[0]["result"][0]["value"]
    assert abs(circle["x"] * 64 / 100 - 3) < 0.01 and abs(circle["width"] * 64 / 100 - 18) < 0.01

    # Label Studio's labelers load the images from the hub through the token link, no hub login
    a = ls_tasks[lab["sha1"]["a"]]
    image = requests.get(a["data"]["image"], timeout=10)
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    assert a["data"]["image"].startswith(live_hub + "/api/v1/labeling/tasks/")
    forged = a["data"]["image"].replace(lab["sha1"]["a"], lab["sha1"]["b"])  # a's token does not open b
    assert requests.get(forged, timeout=10).status_code == 403

    # a labeler's annotation on b (its square moved, a triangle added) and a cancelled one on c
    b = ls_tasks[lab["sha1"]["b"]]
    label_studio.api("POST", f"/api/tasks/{b['id']}/annotations/", json={
        "result": [_rect(12.5, 25.0, 50.0, 50.0, "square"), _rect(75.0, 0.0, 25.0, 50.0, "triangle")]})
    c = ls_tasks[lab["sha1"]["c"]]
    label_studio.api("POST", f"/api/tasks/{c['id']}/annotations/", json={
        "result": [_rect(0, 0, 50, 50, "circle")], "was_cancelled": True})

    r = api.post(f"/api/v1/labeling/tasks/{task['id']}/sync")
    assert r.status_code == 200, r.get_json()
    report = r.get_json()
    assert report["backend"] == "label_studio" and report["images"] == 1 and report["boxes"] == 2, report
    saved = api.get(f"/api/v1/labeling/tasks/{task['id']}/images/{lab['sha1']['b']}").get_json()
    got = sorted((bx["class"], bx["x1"], bx["y1"], bx["x2"], bx["y2"]) for bx in saved["boxes"])
    assert got == [("square", 8.0, 12.0, 40.0, 36.0), ("triangle", 48.0, 0.0, 64.0, 24.0)]
    unlabeled = api.get(f"/api/v1/labeling/tasks/{task['id']}/images/{lab['sha1']['c']}").get_json()
    assert unlabeled["state"] != "done"  # the cancelled annotation was dropped
    shown = api.get(f"/api/v1/labeling/tasks/{task['id']}").get_json()
    assert shown["backend_state"]["last_sync"]["boxes"] == 2

    # a second annotation on a, then finish: finishing pulls once more
    label_studio.api("POST", f"/api/tasks/{a['id']}/annotations/", json={"result": [_rect(0, 0, 25, 50, "circle")]})
    done = api.post(f"/api/v1/labeling/tasks/{task['id']}/finish", json={"name": "from-label-studio"})
    assert done.status_code == 200, done.get_json()
    version = api.get(f"/api/v1/versions/{done.get_json()['result_version_id']}").get_json()
    assert version["state"] == "ready" and version["group_name"] == "from-label-studio"
    assert version["gt_boxes"] == 3  # a's circle + b's square and triangle; c and d were never labeled
    from hub.store import assets as asset_store

    gt = asset_store.annotations_for(app.extensions["ymir"].workspace.database, version["id"],
                                     [lab["sha1"]["a"], lab["sha1"]["b"]])
    assert [(g["class"], g["x1"], g["y1"], g["x2"], g["y2"]) for g in gt[lab["sha1"]["a"]]] == [
        ("circle", 0.0, 0.0, 16.0, 24.0)]
    assert {g["tags"].get("source") for g in gt[lab["sha1"]["b"]]} == {"human"}


def test_a_failed_sync_changes_no_saved_label(api, app, live_hub, label_studio, tmp_path):
    from hub.labeling import tasks
    from hub.store.workspace import Workspace

    lab = labeling_project(api, tmp_path)
    task = create_task(api, "lab", lab["version_id"], backend="label_studio")
    sha1 = lab["sha1"]["a"]
    r = api.put(f"/api/v1/labeling/tasks/{task['id']}/images/{sha1}",
                json={"boxes": [{"x1": 1, "y1": 2, "x2": 30, "y2": 40, "class": "circle"}], "done": True})
    assert r.status_code == 200, r.get_json()
    before = api.get(f"/api/v1/labeling/tasks/{task['id']}/images/{sha1}").get_json()["boxes"]

    ws = app.extensions["ymir"].workspace
    # Label Studio unreachable (a port nobody listens on), then a token it refuses
    for change in ({"label_studio_url": f"http://127.0.0.1:{label_studio_server.free_port()}"},
                   {"label_studio_token": "not-a-token"}):
        other = Workspace.open(dataclasses.replace(ws.settings, **change))
        try:
            with pytest.raises(Exception) as err:
                tasks.sync_task(other, task["id"])
        finally:
            other.close()
        assert type(err.value).__name__ == "Unavailable"
        assert "Label Studio at" in err.value.message, err.value.message
        after = api.get(f"/api/v1/labeling/tasks/{task['id']}/images/{sha1}").get_json()["boxes"]
        assert after == before

    # an annotation in Label Studio overwrites the saved label only through a sync that works
    ls_task = next(t for t in _ls_tasks(label_studio, task["backend_state"]["project_id"])
                   if t["data"]["ymir_sha1"] == sha1)
    label_studio.api("POST", f"/api/tasks/{ls_task['id']}/annotations/",
                     json={"result": [_rect(50, 50, 25, 25, "square"), _rect(10, 10, 0, 0, "circle"),
                                      _rect(10, 10, 20, 20, "horse")]})
    report = api.post(f"/api/v1/labeling/tasks/{task['id']}/sync").get_json()
    assert report["images"] == 1 and report["boxes"] == 1, report
    problems = " | ".join(report["problems"])
    assert "horse" in problems and "zero" in problems.lower(), problems
    after = api.get(f"/api/v1/labeling/tasks/{task['id']}/images/{sha1}").get_json()["boxes"]
    assert [(b["class"], b["x1"], b["y1"]) for b in after] == [("square", 32.0, 24.0)]


def test_label_studio_unreachable_at_create_leaves_no_task(api, app, tmp_path):
    lab = labeling_project(api, tmp_path)
    ws = app.extensions["ymir"].workspace
    from hub.labeling import tasks
    from hub.store.workspace import Workspace

    other = Workspace.open(dataclasses.replace(
        ws.settings, label_studio_url=f"http://127.0.0.1:{label_studio_server.free_port()}"))
    try:
        with pytest.raises(Exception) as err:
            tasks.create_task(other, version_id=lab["version_id"], backend="label_studio")
    finally:
        other.close()
    assert "unreachable" in err.value.message
    assert api.get("/api/v1/projects/lab/labeling/tasks").get_json()["tasks"] == []


def test_a_personal_access_token_is_exchanged_and_renewed(label_studio):
    from hub.labeling.label_studio import Client

    pat = label_studio.api("POST", "/api/token/")["token"]  # a personal access token (JWT refresh token)
    api = Client(label_studio.url, pat)
    assert "results" in api.json("GET", "/api/projects/", "list the projects")
    first = api._access
    assert first and first != pat  # the short-lived access token it was exchanged for
    api._access = first[:-4] + "AAAA"  # as if it had expired: Label Studio answers 401, the client renews it
    assert "results" in api.json("GET", "/api/projects/", "list the projects")
    assert api._access not in (None, first[:-4] + "AAAA")

    with pytest.raises(Exception) as err:
        Client(label_studio.url, pat[:-4] + "AAAA").json("GET", "/api/projects/", "list the projects")
    assert type(err.value).__name__ == "Unavailable" and "refused the personal access token" in err.value.message


def test_the_scheduled_sync_pulls_open_tasks(api, app, live_hub, label_studio, tmp_path):
    import time

    from hub.labeling.label_studio import SyncTicker

    lab = labeling_project(api, tmp_path)
    task = create_task(api, "lab", lab["version_id"], backend="label_studio")
    sha1 = lab["sha1"]["d"]
    ls_task = next(t for t in _ls_tasks(label_studio, task["backend_state"]["project_id"])
                   if t["data"]["ymir_sha1"] == sha1)
    label_studio.api("POST", f"/api/tasks/{ls_task['id']}/annotations/",
                     json={"result": [_rect(50, 10, 40, 80, "triangle")]})
    ticker = SyncTicker(app.extensions["ymir"].workspace, 0.2)
    ticker.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            image = api.get(f"/api/v1/labeling/tasks/{task['id']}/images/{sha1}").get_json()
            if image["state"] == "done":
                break
            time.sleep(0.2)
    finally:
        ticker.stop()
    assert [(b["class"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in image["boxes"]] == [
        ("triangle", 32.0, 4.8, 57.6, 43.2)], image


def test_the_iteration_label_step_done_in_label_studio_makes_the_same_kind_of_version(api, app, live_hub,
                                                                                      label_studio, tmp_path):
    """The issue's "done when": a round's label step with ``backend: label_studio`` hands the mined images to a
    Label Studio project; the annotations made there come back through the hub's finish; the round goes on to
    merge. The version it makes is of the same kind as the built-in annotator's for the same images and labels
    (operation, parent, GT boxes within a pixel, box source tags)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "iterations"))
    from iteration_helpers import FAST_TRAINING, oracle_label, scenario_project, wait_step

    from hub.store import assets as asset_store

    topk = 4
    al = scenario_project(api, tmp_path / "scen", sizes={"train": 24, "pool": 20, "val": 8, "test": 8})
    r = api.post("/api/v1/projects/al/iteration", json={
        "training_version_id": al["train"], "mining_version_id": al["pool"], "validation_version_id": al["val"],
        "test_version_id": al["test"],
        "params": {"training": {"config": {**FAST_TRAINING, "epochs": 1}}, "mining": {"topk": topk},
                   "label": {"backend": "label_studio"}}})
    assert r.status_code == 201, r.get_json()
    assert api.post("/api/v1/projects/al/iteration/steps/training").status_code == 202
    assert wait_step(api, "al", "training")["steps"][0]["state"] == "done"
    api.post("/api/v1/projects/al/iteration/next")
    for step in ("prepare_mining", "mining"):
        assert api.post(f"/api/v1/projects/al/iteration/steps/{step}").status_code == 202
        row = next(s for s in wait_step(api, "al", step)["steps"] if s["step"] == step)
        assert row["state"] == "done", row
    mined = row["output"]["version_id"]

    r = api.post("/api/v1/projects/al/iteration/steps/label")
    assert r.status_code == 202, r.get_json()
    label = next(s for s in r.get_json()["rounds"][-1]["steps"] if s["step"] == "label")
    assert label["state"] == "running" and "waiting for labeling task" in label["message"]
    task = api.get(f"/api/v1/labeling/tasks/{label['task_id']}").get_json()
    assert task["backend"] == "label_studio" and task["version_id"] == mined
    ls_tasks = _ls_tasks(label_studio, task["backend_state"]["project_id"])
    assert len(ls_tasks) == topk

    # the labelers work in Label Studio: each mined image gets its true boxes, in Label Studio's percent units
    truth = al["truth"]
    for t in ls_tasks:
        img = truth[t["data"]["ymir_sha1"]]
        w, h = img["width"], img["height"]
        result = [_rect(100 * b["x1"] / w, 100 * b["y1"] / h, 100 * (b["x2"] - b["x1"]) / w,
                        100 * (b["y2"] - b["y1"]) / h, b["class"], ow=w, oh=h) for b in img["boxes"]]
        label_studio.api("POST", f"/api/tasks/{t['id']}/annotations/", json={"result": result})
    still = next(s for s in wait_step(api, "al", "label", states=("running",))["steps"] if s["step"] == "label")
    assert still["state"] == "running"  # annotated in Label Studio, but nobody finished the task yet
    done = api.post(f"/api/v1/labeling/tasks/{task['id']}/finish")
    assert done.status_code == 200, done.get_json()
    rnd = wait_step(api, "al", "label")
    label = next(s for s in rnd["steps"] if s["step"] == "label")
    assert label["state"] == "done", label
    from_ls = label["output"]["version_id"]

    # the same images labeled with the same truth in the built-in annotator's task, for comparison
    builtin = create_task(api, "al", mined, name="built-in twin")
    assert builtin["backend"] == "builtin"
    assert oracle_label(api, builtin["id"], truth) == topk
    from_builtin = api.get(f"/api/v1/labeling/tasks/{builtin['id']}").get_json()["result_version_id"]

    versions = [api.get(f"/api/v1/versions/{v}").get_json() for v in (from_ls, from_builtin)]
    for v in versions:
        assert v["state"] == "ready" and v["operation"] == "label" and v["images"] == topk, v
        assert v["parent_ids"] == [mined]
        assert v["gt_boxes"] == sum(len(truth[t["data"]["ymir_sha1"]]["boxes"]) for t in ls_tasks)
    db = app.extensions["ymir"].workspace.database
    sha1s = [t["data"]["ymir_sha1"] for t in ls_tasks]
    gts = [asset_store.annotations_for(db, v, sha1s) for v in (from_ls, from_builtin)]
    for sha1 in sha1s:
        a, b = (sorted(g[sha1], key=lambda x: (x["class"], x["x1"], x["y1"])) for g in gts)
        assert [x["class"] for x in a] == [x["class"] for x in b]
        assert all(abs(x[k] - y[k]) <= 1 for x, y in zip(a, b, strict=True) for k in ("x1", "y1", "x2", "y2")), (a, b)
        assert {x["tags"].get("source") for x in a} == {y["tags"].get("source") for y in b} == {"human"}

    r = api.post("/api/v1/projects/al/iteration/steps/merge")
    assert r.status_code == 202, r.get_json()
    merged = next(s for s in r.get_json()["rounds"][-1]["steps"] if s["step"] == "merge")["output"]
    assert merged["images"] == 24 + topk
