"""The platform's central loop on CPU in minutes: two full rounds through the API, labels from an oracle.

The scenario's initial training set has few triangles; its mining pool is full of them. Each round prepares
the pool (used and duplicate images dropped), mines the top-k with the round's model, labels them (the oracle
reads the synthetic truth), merges them into the training set and fine-tunes; the test mAP must rise.
"""

from __future__ import annotations

import pytest
from iteration_helpers import FAST_TRAINING, oracle_label, scenario_project, wait_step

TOPK = 50


@pytest.mark.slow
def test_two_rounds_of_mining_and_labeling_lift_test_map(api, tmp_path):
    al = scenario_project(api, tmp_path / "scen")
    r = api.post("/api/v1/projects/al/iteration", json={
        "training_version_id": al["train"], "mining_version_id": al["pool"], "validation_version_id": al["val"],
        "test_version_id": al["test"], "goal_map": 0.99,
        "params": {"training": {"config": FAST_TRAINING},
                   # the executor's own default threshold, given explicitly: the step hands its config to the job
                   "mining": {"topk": TOPK, "algorithm": "aldd", "config": {"conf_threshold": 0.05}}}})
    assert r.status_code == 201, r.get_json()
    assert api.post("/api/v1/projects/al/iteration/steps/training").status_code == 202
    assert wait_step(api, "al", "training")["steps"][0]["state"] == "done"

    seen: set[str] = set()
    for round_no in (1, 2):
        rnd = api.post("/api/v1/projects/al/iteration/next").get_json()["rounds"][-1]
        assert rnd["round"] == round_no
        for step in ("prepare_mining", "mining"):
            r = api.post(f"/api/v1/projects/al/iteration/steps/{step}")
            assert r.status_code == 202, r.get_json()
            row = next(s for s in wait_step(api, "al", step)["steps"] if s["step"] == step)
            assert row["state"] == "done", row
        mined = row["output"]["version_id"]
        job = api.get(f"/api/v1/jobs/{row['job_id']}").get_json()
        assert job["params"]["config"] == {"conf_threshold": 0.05}, job["params"]
        sha1s = {a["sha1"] for a in api.get(f"/api/v1/versions/{mined}/assets?limit=1000").get_json()["assets"]}
        assert len(sha1s) == TOPK and not sha1s & seen, "a round never mines what an earlier one labeled"
        seen |= sha1s

        r = api.post("/api/v1/projects/al/iteration/steps/label")
        assert r.status_code == 202, r.get_json()
        rnd = r.get_json()["rounds"][-1]
        label = next(s for s in rnd["steps"] if s["step"] == "label")
        assert label["state"] == "running" and "waiting for labeling task" in label["message"]
        assert oracle_label(api, label["task_id"], al["truth"]) == TOPK
        rnd = wait_step(api, "al", "label")
        assert next(s for s in rnd["steps"] if s["step"] == "label")["state"] == "done"

        r = api.post("/api/v1/projects/al/iteration/steps/merge")
        assert r.status_code == 202, r.get_json()
        merged = next(s for s in r.get_json()["rounds"][-1]["steps"] if s["step"] == "merge")["output"]
        assert merged["images"] == 60 + TOPK * round_no
        assert api.post("/api/v1/projects/al/iteration/steps/training").status_code == 202
        rnd = wait_step(api, "al", "training", timeout=900)
        assert rnd["state"] == "done", rnd

    hist = api.get("/api/v1/projects/al/iteration/history").get_json()
    maps = [r["test_map50"] for r in hist["rounds"]]
    print("test mAP50 per round:", maps)
    assert [r["round"] for r in hist["rounds"]] == [0, 1, 2]
    assert maps[2] > maps[1] > maps[0], maps
    assert hist["goals"]["current_map"] == max(maps)
