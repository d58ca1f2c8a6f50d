"""Helpers for the iteration tests: the active-learning scenario imported through the API, waits, an oracle."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from hub_helpers import wait_ready

#: a training config small enough for CPU tests (128 px, few epochs, deterministic)
FAST_TRAINING = {"epochs": 8, "input_size": 128, "batch_size": 8, "save_period": 0, "seed": 0}


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
