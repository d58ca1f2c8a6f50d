"""The iteration workflow's rules: setup checks, step order, skips, errors that leave the round as it was."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from iteration_helpers import FAST_TRAINING, scenario_project, wait_step
from PIL import Image

SMALL = {"train": 24, "pool": 30, "val": 12, "test": 12}


@pytest.fixture
def al(api, tmp_path):
    return scenario_project(api, tmp_path / "scen", sizes=SMALL)


def _start(api, al, **extra):
    body = {"training_version_id": al["train"], "mining_version_id": al["pool"],
            "validation_version_id": al["val"], "test_version_id": al["test"],
            "params": {"training": {"config": {**FAST_TRAINING, "epochs": 1}}}, **extra}
    return api.post("/api/v1/projects/al/iteration", json=body)


def test_setup_is_checked_and_nothing_is_stored_on_error(api, al):
    r = _start(api, al, mining_version_id=al["train"])
    assert r.status_code == 400 and "four different versions" in r.get_json()["error"]
    r = _start(api, al, training_version_id=al["pool"])
    assert r.status_code == 400 and "no ground-truth boxes" in r.get_json()["error"]
    r = _start(api, al, params={"bogus": {}})
    assert r.status_code == 400 and "unknown step 'bogus'" in r.get_json()["error"]
    r = _start(api, al, goal_map=3)
    assert r.status_code == 400 and "goal mAP" in r.get_json()["error"]
    r = api.get("/api/v1/projects/al/iteration")
    assert r.status_code == 400 and "no iteration set up" in r.get_json()["error"]


def test_round_zero_trains_and_tests_the_initial_model_then_rules_hold(api, al):
    r = _start(api, al, goal_map=0.99, goal_train_images=100)
    assert r.status_code == 201, r.get_json()
    data = r.get_json()
    assert data["active_round"] == 0 and data["current_step"] == "training"
    assert data["goals"]["current_train_images"] == SMALL["train"] and not data["goals"]["train_images_reached"]
    assert _start(api, al).status_code == 409

    # round 0 makes the initial model: it cannot be skipped; a step it does not have is named
    r = api.post("/api/v1/projects/al/iteration/steps/training/skip")
    assert r.status_code == 400 and "cannot be skipped" in r.get_json()["error"]
    r = api.post("/api/v1/projects/al/iteration/steps/mining")
    assert r.status_code == 400 and "has no step 'mining'" in r.get_json()["error"]
    r = api.post("/api/v1/projects/al/iteration/next")
    assert r.status_code == 409 and "not finished" in r.get_json()["error"]

    r = api.post("/api/v1/projects/al/iteration/steps/training", json={"params": {"bogus": 1}})
    assert r.status_code == 400 and "no parameter 'bogus'" in r.get_json()["error"]
    r = api.post("/api/v1/projects/al/iteration/steps/training")
    assert r.status_code == 202, r.get_json()
    assert api.post("/api/v1/projects/al/iteration/steps/training").status_code == 409  # already running
    rnd = wait_step(api, "al", "training")
    step = rnd["steps"][0]
    assert step["state"] == "done", step
    out = step["output"]
    assert out["model_id"] and out["test_pred_version_id"] and 0 <= out["test_map50"] <= 1
    assert rnd["state"] == "done" and rnd["result"]["model_id"] == out["model_id"]
    # the test mAP comes from a test-set inference at the trainer's validation threshold, not the infer
    # template's 0.25 (which truncates the PR curve the mAP integrates)
    (test_job,) = api.get("/api/v1/jobs?project=al&kind=infer").get_json()["jobs"]
    assert test_job["params"]["version_id"] == al["test"] and test_job["params"]["config"]["conf_threshold"] == 0.01

    # round 1: every step pending, proposals pre-filled from round 0 and the setup
    data = api.post("/api/v1/projects/al/iteration/next").get_json()
    rnd = data["rounds"][-1]
    assert rnd["round"] == 1 and [s["step"] for s in rnd["steps"]] == [
        "prepare_mining", "mining", "label", "merge", "training"]
    prep = rnd["steps"][0]["proposal"]
    assert prep["inputs"]["version_ids"] == [al["pool"]]
    assert set(prep["inputs"]["exclude_version_ids"]) == {al["train"], al["val"], al["test"]}
    assert rnd["steps"][1]["proposal"]["inputs"]["model_id"] == out["model_id"]
    assert rnd["steps"][4]["proposal"]["params"]["config"]["epochs"] == 1  # sticky from round 0

    # order is enforced
    r = api.post("/api/v1/projects/al/iteration/steps/merge")
    assert r.status_code == 409 and "comes after 'prepare_mining'" in r.get_json()["error"]

    # frames a device sent back join the mining set: shown in the proposal, kept by the preparation
    edge_vid, edge_sha1s = _send_captures(api, 3)
    rnd = api.get("/api/v1/projects/al/iteration").get_json()["rounds"][-1]
    assert rnd["steps"][0]["proposal"]["inputs"]["edge_capture_version_ids"] == [edge_vid]
    assert api.post("/api/v1/projects/al/iteration/steps/prepare_mining").status_code == 202
    prep = next(s for s in wait_step(api, "al", "prepare_mining")["steps"] if s["step"] == "prepare_mining")
    assert prep["state"] == "done", prep
    kept = {a["sha1"] for a in api.get(f"/api/v1/versions/{prep['output']['version_id']}/assets?limit=1000")
            .get_json()["assets"]}
    assert edge_sha1s <= kept and len(kept) == SMALL["pool"] + len(edge_sha1s)

    # the mining step's executor config must be an object of settings
    r = api.post("/api/v1/projects/al/iteration/steps/mining", json={"params": {"config": "fast"}})
    assert r.status_code == 400 and "config must be an object" in r.get_json()["error"]
    assert next(s for s in api.get("/api/v1/projects/al/iteration").get_json()["rounds"][-1]["steps"]
                if s["step"] == "mining")["state"] == "pending"

    # skipping mining makes labeling impossible and says why, the round is unchanged
    assert api.post("/api/v1/projects/al/iteration/steps/mining/skip").status_code == 200
    before = api.get("/api/v1/projects/al/iteration").get_json()["rounds"][-1]
    r = api.post("/api/v1/projects/al/iteration/steps/label")
    assert r.status_code == 400 and "'mining' was skipped" in r.get_json()["error"]
    after = api.get("/api/v1/projects/al/iteration").get_json()["rounds"][-1]
    assert [s["state"] for s in after["steps"]] == [s["state"] for s in before["steps"]]
    assert api.post("/api/v1/projects/al/iteration/steps/label/skip").status_code == 200
    r = api.post("/api/v1/projects/al/iteration/steps/merge")
    assert r.status_code == 400 and "'label' was skipped" in r.get_json()["error"]
    assert api.post("/api/v1/projects/al/iteration/steps/merge/skip").status_code == 200
    assert api.post("/api/v1/projects/al/iteration/steps/training/skip").status_code == 200
    hist = api.get("/api/v1/projects/al/iteration/history").get_json()
    assert [r["round"] for r in hist["rounds"]] == [0, 1]
    assert hist["rounds"][1]["model_id"] == out["model_id"]  # nothing trained: the model carries over
    assert hist["rounds"][0]["test_map50"] == out["test_map50"]


def _send_captures(api, n: int) -> tuple[int, set[str]]:
    """``n`` distinct frames from device cam1 of project al, as its agent uploads them; their version and sha1s."""
    import hashlib

    dev = api.post("/api/v1/devices", json={"id": "cam1", "project": "al"}).get_json()
    sha1s, vid = set(), None
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(buf, "JPEG")
        meta = {"record": {"id": f"r{i}", "detections": []}, "reason": "uncertain", "score_name": "entropy",
                "score": 0.5}
        r = api.c.post("/api/v1/devices/cam1/captures", headers={"Authorization": f"Bearer {dev['token']}"},
                       data={"meta": json.dumps(meta), "frame": (io.BytesIO(buf.getvalue()), "f.jpg")},
                       content_type="multipart/form-data")
        assert r.status_code == 201, r.get_json()
        vid = r.get_json()["version_id"]
        sha1s.add(hashlib.sha1(buf.getvalue()).hexdigest())
    return vid, sha1s


def test_a_hub_restart_mid_round_resumes_the_round(workspace, tmp_path):
    """The hub closes while round 0's training runs; a new hub on the same workspace re-attaches the job,
    and the round goes on to testing and ends, with nobody calling the step again."""
    from hub import create_app
    from hub.store import users as user_store

    admin = user_store.get_user_by_name(workspace.database, "admin")
    token = user_store.create_token(workspace.database, admin["id"], "restart")
    headers = {"Authorization": f"Bearer {token}"}

    class Client:
        def __init__(self, app):
            self.c = app.test_client()

        def get(self, url, **kw):
            return self.c.get(url, headers=headers, **kw)

        def post(self, url, **kw):
            return self.c.post(url, headers=headers, **kw)

    app1 = create_app(workspace.settings)
    api1 = Client(app1)
    al = scenario_project(api1, tmp_path / "scen", sizes=SMALL)
    assert _start(api1, al, params={"training": {"config": {**FAST_TRAINING, "epochs": 3}}}).status_code == 201
    assert api1.post("/api/v1/projects/al/iteration/steps/training").status_code == 202
    deadline = time.monotonic() + 60
    while api1.get("/api/v1/jobs?kind=train").get_json()["jobs"][0]["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    app1.extensions["ymir"].close()  # the hub goes away mid-training

    app2 = create_app(workspace.settings)
    try:
        api2 = Client(app2)
        step = api2.get("/api/v1/projects/al/iteration").get_json()["rounds"][0]["steps"][0]
        assert step["state"] == "running" and step["phase"] == "training"
        rnd = wait_step(api2, "al", "training")
        assert rnd["steps"][0]["state"] == "done", rnd["steps"][0]
        assert rnd["state"] == "done" and rnd["steps"][0]["output"]["test_map50"] is not None
        train_jobs = api2.get("/api/v1/jobs?kind=train").get_json()["jobs"]
        assert len(train_jobs) == 1 and train_jobs[0]["state"] == "done"  # the same job, not a second one
    finally:
        app2.extensions["ymir"].close()
