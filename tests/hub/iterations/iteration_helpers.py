"""Helpers for the iteration tests: the active-learning scenario imported through the API, waits, an oracle."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from hub_helpers import wait_ready

#: a training config small enough for CPU tests and still learning (192 px: 0.35 test mAP50 from the
#: scenario's 60 training images in ~40 s on 2 cores; deterministic)
FAST_TRAINING = {"epochs": 40, "input_size": 192, "batch_size": 8, "save_period": 0, "seed": 0}


def upload(api, path: Path, project: str, name: str) -> int:
    data = {"file": (io.BytesIO(path.read_bytes()), path.name), "name": name}
    r = api.post(f"/api/v1/projects/{project}/datasets/import", data=data, content_type="multipart/form-data")
    assert r.status_code == 202, r.get_json()
    v = wait_ready(api, r.get_json()["version_id"], timeout=120)
    assert v["state"] == "ready", v
    return v["id"]


def scenario_project(api, folder: Path, project: str = "al", seed: int = 0, sizes: dict | None = None) -> dict:
    """Project ``project`` (circle/square/triangle) with the scenario's four sets imported; returns their ids
    and the pool's truth (sha1 -> boxes)."""
    from detkit.al_scenario import write_scenario

    paths = write_scenario(folder, seed=seed, sizes=sizes)
    r = api.post("/api/v1/projects", json={"name": project, "classes": ["circle", "square", "triangle"],
                                          "add_classes": True})
    assert r.status_code == 201, r.get_json()
    ids = {name: upload(api, paths[name], project, name) for name in ("train", "pool", "val", "test")}
    ids["truth"] = json.loads(paths["pool_truth"].read_text())
    return ids


def wait_step(api, project: str, step: str, states=("done", "failed", "skipped"), timeout: float = 600) -> dict:
    """Poll the iteration until ``step`` of the newest round reaches one of ``states``; returns the round."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = api.get(f"/api/v1/projects/{project}/iteration").get_json()
        rnd = data["rounds"][-1]
        row = next(s for s in rnd["steps"] if s["step"] == step)
        if row["state"] in states:
            return rnd
        time.sleep(0.5)
    raise AssertionError(f"step {step} still {row['state']} after {timeout}s: {row}")


def oracle_label(api, task_id: int, truth: dict) -> int:
    """Label every image of a labeling task from the scenario's truth through the API (a test-only oracle
    standing in for a person); returns the number of images labeled."""
    images = api.get(f"/api/v1/labeling/tasks/{task_id}/images").get_json()["images"]
    for img in images:
        boxes = [{"class": b["class"], "x1": b["x1"], "y1": b["y1"], "x2": b["x2"], "y2": b["y2"]}
                 for b in truth[img["sha1"]]["boxes"]]
        r = api.put(f"/api/v1/labeling/tasks/{task_id}/images/{img['sha1']}", json={"boxes": boxes, "done": True})
        assert r.status_code == 200, r.get_json()
    r = api.post(f"/api/v1/labeling/tasks/{task_id}/finish")
    assert r.status_code == 200, r.get_json()
    return len(images)


def wait_job(api, job_id: str, timeout: float = 120) -> dict:
    """Poll a job through the API until it is done, failed or cancelled."""
    deadline = time.monotonic() + timeout
    job = {}
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{job_id}").get_json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.get('state')} after {timeout}s")
