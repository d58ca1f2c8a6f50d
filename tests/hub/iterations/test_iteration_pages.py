"""The iteration pages: set up from the form, run a step from its pre-filled form, next round, history chart."""

from __future__ import annotations

from iteration_helpers import FAST_TRAINING, scenario_project, wait_step

from executor.config import template

SMALL = {"train": 24, "pool": 30, "val": 12, "test": 12}


def test_iteration_from_the_pages(api, client, tmp_path):
    al = scenario_project(api, tmp_path / "scen", sizes=SMALL)
    pid = api.get("/api/v1/projects/al").get_json()["id"]
    page = client.get(f"/projects/{pid}/iteration").get_data(as_text=True)
    assert "Use iteration to improve the model" in page and 'id="setup-mining"' in page

    # a bad form is refused with the message shown, nothing stored
    r = client.post(f"/projects/{pid}/iteration/start", data={
        "csrf_token": client.csrf, "training": al["train"], "mining": al["train"], "validation": al["val"],
        "test": al["test"]}, follow_redirects=True)
    assert "four different versions" in r.get_data(as_text=True)
    r = client.post(f"/projects/{pid}/iteration/start", data={
        "csrf_token": client.csrf, "training": al["train"], "mining": al["pool"], "validation": al["val"],
        "test": al["test"], "goal_map": "0.95"}, follow_redirects=True)
    page = r.get_data(as_text=True)
    assert 'id="step-training"' in page and "Run</button>" in page and "of the goal 0.950" in page

    # the training step's form carries the template's hyperparameters (round 0 has no sticky config yet: without
    # them a user could not set one); run it with a small config, only what differs from the template is kept
    assert f'name="c_epochs" value="{template("training")["epochs"]}"' in page and 'name="c_learning_rate" value="0.01"' in page
    form = {"csrf_token": client.csrf, "has_config": "1", "has_pretrained": "1", "p_pretrained": "on",
            **{f"c_{k}": str(v) for k, v in {**FAST_TRAINING, "epochs": 1}.items()}}
    r = client.post(f"/projects/{pid}/iteration/steps/training", data=form, follow_redirects=True)
    assert r.status_code == 200 and 'data-state="running"' in r.get_data(as_text=True)
    rnd = wait_step(api, "al", "training")
    assert rnd["steps"][0]["state"] == "done" and rnd["steps"][0]["params"]["config"]["epochs"] == 1
    assert rnd["steps"][0]["params"]["config"] == {"epochs": 1, "input_size": 192, "save_period": 0}

    page = client.get(f"/projects/{pid}/iteration").get_data(as_text=True)
    assert "Start next iteration" in page
    r = client.post(f"/projects/{pid}/iteration/next", data={"csrf_token": client.csrf}, follow_redirects=True)
    page = r.get_data(as_text=True)
    assert 'id="step-prepare_mining"' in page and "Skip this step" in page and "near_dup_threshold" in page
    r = client.post(f"/projects/{pid}/iteration/steps/prepare_mining/skip", data={"csrf_token": client.csrf},
                    follow_redirects=True)
    assert 'id="step-prepare_mining" data-state="skipped"' in r.get_data(as_text=True)

    page = client.get(f"/projects/{pid}/iteration?tab=history").get_data(as_text=True)
    assert 'id="map-chart"' in page and 'data-round="0"' in page and 'data-round="1"' in page
    assert "chart-4.6.1.umd.min.js" in page
