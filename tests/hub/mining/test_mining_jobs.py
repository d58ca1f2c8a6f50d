"""Mining jobs on a real trained model: the top-k as a version with scores and pre-annotations, its errors,
the class-balanced re-ranking, an agent's edge captures as candidates, the page and the CLI."""

from __future__ import annotations

import json
import re

import pytest
from hub_helpers import ADMIN_PASSWORD, csrf_from, jpeg
from iteration_helpers import FAST_TRAINING, scenario_project, wait_job

SMALL = {"train": 16, "pool": 20, "val": 6, "test": 6}


@pytest.fixture(scope="module")
def mined_hub(tmp_path_factory):
    """A hub with the scenario imported and a model trained on it (module-wide: training is the slow part)."""
    from hub import auth, create_app
    from hub.config import load_settings
    from hub.store import users as user_store
    from hub.store.workspace import Workspace

    tmp = tmp_path_factory.mktemp("mining")
    settings = load_settings(tmp / "ws", env={}, testing=True, secret_key="test-secret")
    ws = Workspace.create(settings)
    auth.add_user(ws.database, "admin", ADMIN_PASSWORD, "admin")
    admin = user_store.get_user_by_name(ws.database, "admin")
    token = user_store.create_token(ws.database, admin["id"], "tests")
    app = create_app(settings)

    class Api:
        def __init__(self):
            self.c = app.test_client()
            self.h = {"Authorization": f"Bearer {token}"}

        def get(self, url, **kw):
            return self.c.get(url, headers=self.h, **kw)

        def post(self, url, **kw):
            return self.c.post(url, headers=self.h, **kw)

    api = Api()
    ids = scenario_project(api, tmp / "scen", sizes=SMALL)
    r = api.post("/api/v1/projects/al/train", json={"train_version_id": ids["train"], "val_version_id": ids["val"],
                                                    "config": {**FAST_TRAINING, "epochs": 3, "input_size": 128}})
    assert r.status_code == 202, r.get_json()
    job = wait_job(api, r.get_json()["id"], timeout=300)
    assert job["state"] == "done", job
    ids["model"] = job["result"]["model_id"]
    ids["home"] = tmp / "ws"
    yield app, api, ids
    app.extensions["ymir"].close()
    ws.close()


def _mine(api, ids, **body):
    return api.post("/api/v1/projects/al/mining", json={"model_id": ids["model"], "version_ids": [ids["pool"]],
                                                        "topk": 8, **body})


def test_mining_makes_a_version_of_the_top_k_with_scores_and_pre_annotations(mined_hub):
    app, api, ids = mined_hub
    r = _mine(api, ids, algorithm="entropy")
    assert r.status_code == 202, r.get_json()
    job = wait_job(api, r.get_json()["id"], timeout=300)
    assert job["state"] == "done", job
    res = job["result"]
    assert res["topk"] == 8 and res["pool"] == SMALL["pool"] and res["scored"] == SMALL["pool"]
    v = api.get(f"/api/v1/versions/{res['version_id']}").get_json()
    assert v["images"] == 8 and v["operation"] == "mine" and v["report"]["algorithm"] == "entropy"
    mined = api.get(f"/api/v1/mining/versions/{res['version_id']}").get_json()["assets"]
    scores = [a["score"] for a in mined]
    assert [a["rank"] for a in mined] == list(range(1, 9)) and scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(res["top"][0][1], abs=1e-6)
    # the top-k are the highest of all the pool's scores
    assert min(scores) >= sorted((s for _, s in res["top"]), reverse=True)[7] - 1e-9
    assets = api.get(f"/api/v1/versions/{res['version_id']}/assets?limit=50").get_json()["assets"]
    assert all("mining_score" in a["tags"] and "mining_rank" in a["tags"] for a in assets)
    assert v["pred_boxes"] == sum(a["pred_boxes"] for a in mined) and v["gt_boxes"] == 0

    # the pages: the job page links the result, which is a grid sorted by score; the mining page lists the job
    c = app.test_client()
    login = c.get("/login").get_data(as_text=True)
    c.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf_from(login)})
    job_page = c.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert f"/mining/versions/{res['version_id']}" in job_page
    grid = c.get(f"/mining/versions/{res['version_id']}").get_data(as_text=True)
    shown = [float(x) for x in re.findall(r'data-score="([0-9.]+)"', grid)]
    assert shown == pytest.approx(scores)
    listing = c.get(f"/projects/{v['project_id']}/mining").get_data(as_text=True)
    assert job["id"] in listing and 'id="mining-form"' in listing and 'id="prepare-form"' in listing


def test_without_pre_annotations_no_boxes_and_class_balanced_reranks(mined_hub):
    app, api, ids = mined_hub
    plain = wait_job(api, _mine(api, ids, algorithm="aldd", pre_annotations=False).get_json()["id"], timeout=300)
    assert plain["state"] == "done", plain
    v = api.get(f"/api/v1/versions/{plain['result']['version_id']}").get_json()
    assert v["pred_boxes"] == 0 and v["images"] == 8
    bal = wait_job(api, _mine(api, ids, algorithm="aldd", class_balanced=True).get_json()["id"], timeout=300)
    assert bal["state"] == "done", bal
    vb = api.get(f"/api/v1/versions/{bal['result']['version_id']}").get_json()
    assert vb["report"]["class_balanced"] is True and vb["images"] == 8


def test_mining_errors_name_what_is_wrong(mined_hub):
    app, api, ids = mined_hub
    r = _mine(api, ids, topk=SMALL["pool"] + 1)
    assert r.status_code == 400 and f"top-k {SMALL['pool'] + 1} is larger than the pool" in r.get_json()["error"]
    r = _mine(api, ids, algorithm="bogus")
    assert r.status_code == 400 and "unknown mining algorithm 'bogus'" in r.get_json()["error"]
    r = _mine(api, ids, topk=0)
    assert r.status_code == 400 and "topk" in r.get_json()["error"]
    # a project whose targets the model does not cover
    assert api.post("/api/v1/classes", json={"name": "hexagon"}).status_code == 201
    r = api.c.patch("/api/v1/projects/al", headers=api.h, json={"classes": ["circle", "square", "triangle", "hexagon"]})
    assert r.status_code == 200, r.get_json()
    try:
        r = _mine(api, ids)
        assert r.status_code == 400, r.get_json()
        assert "does not detect the project's target classes hexagon" in r.get_json()["error"]
    finally:
        api.c.patch("/api/v1/projects/al", headers=api.h, json={"classes": ["circle", "square", "triangle"]})


def test_an_agents_edge_captures_are_mining_candidates(mined_hub):
    app, api, ids = mined_hub
    dev = api.post("/api/v1/devices", json={"id": "cam1", "project": "al"}).get_json()
    dc = app.test_client()
    sizes = [(160, 120), (128, 96), (96, 96), (120, 160)]
    for i, size in enumerate(sizes):
        meta = {"record": {"id": f"r{i}", "detections": [{"box": [5, 5, 40, 40], "score": 0.4, "class_id": 0,
                                                          "class_name": "circle"}]},
                "reason": "uncertain", "score_name": "entropy", "score": 0.5}
        r = dc.post("/api/v1/devices/cam1/captures", headers={"Authorization": f"Bearer {dev['token']}"},
                    data={"meta": json.dumps(meta), "frame": (__import__("io").BytesIO(jpeg((40 * i, 90, 200), size)),
                                                              "f.jpg")},
                    content_type="multipart/form-data")
        assert r.status_code == 201, r.get_json()
        vid = r.get_json()["version_id"]
    r = api.post("/api/v1/projects/al/mining", json={"model_id": ids["model"], "version_ids": [vid, ids["pool"]],
                                                     "topk": SMALL["pool"] + len(sizes), "algorithm": "margin"})
    assert r.status_code == 202, r.get_json()
    job = wait_job(api, r.get_json()["id"], timeout=300)
    assert job["state"] == "done", job
    assets = api.get(f"/api/v1/versions/{job['result']['version_id']}/assets?limit=100").get_json()["assets"]
    edge = [a for a in assets if a["tags"].get("source") == "edge"]
    assert len(edge) == len(sizes) and all(a["tags"]["device"] == "cam1" and "mining_score" in a["tags"]
                                           for a in edge)


def test_cli_prepares_mines_and_shows_the_ranking(mined_hub):
    from click.testing import CliRunner

    from hub.cli import main

    app, api, ids = mined_hub

    def hub(*args):
        result = CliRunner().invoke(main, ["--home", str(ids["home"]), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    prepared = json.loads(hub("mining", "prepare", "--project", "al", "--dataset", str(ids["pool"]), "--exclude",
                              str(ids["train"]), "--wait", "--json"))
    assert prepared["report"]["kept"] == SMALL["pool"]
    out = json.loads(hub("mine", "--model", str(ids["model"]), "--dataset", str(prepared["version_id"]), "--topk",
                         "5", "--algorithm", "least_confidence", "--wait", "--json"))
    assert out["topk"] == 5 and out["algorithm"] == "least_confidence"
    shown = json.loads(hub("mining", "show", str(out["version_id"]), "--json"))
    assert [a["rank"] for a in shown["assets"]] == [1, 2, 3, 4, 5]
    table = json.loads(hub("mining", "algorithms", "--json"))
    assert {a["name"] for a in table} >= {"aldd", "cald", "entropy", "random"}
    assert next(a for a in table if a["name"] == "cald")["extra_inferences"] == 3
