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


def camera_frames(count: int, seed: int = 7, prefix: str = "cam") -> tuple[list[bytes], dict]:
    """``count`` synthetic frames of the scenario's mining pool (its class mix, another seed) as a camera would
    send them (JPEG bytes), and their truth keyed by sha1 like the pool's (for the oracle)."""
    import hashlib

    from detkit.al_scenario import PARTS
    from detkit.synth import scenes

    frames, truth = [], {}
    for img, ann in scenes(count, seed, PARTS["pool"].class_weights, prefix=prefix):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        frames.append(data)
        truth[hashlib.sha1(data).hexdigest()] = {
            "filename": ann.filename, "width": ann.width, "height": ann.height,
            "boxes": [{"class": b.name, "x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2} for b in ann.boxes]}
    return frames, truth


def agent_sends(hub_url: str, device_id: str, device_token: str, frames: list[bytes], store: Path) -> int:
    """The frames captured on a device the agent's own way: its edge miner (:class:`agent.mining.Miner`) picks
    every one of them into its outbox, its uplink (:class:`agent.uplink.Uplink`) POSTs them to the hub's
    ``/api/v1/devices/<id>/captures`` with the device token; returns the number the hub took."""
    from types import SimpleNamespace

    from agent.config import AgentSettings
    from agent.mining import Miner
    from agent.uplink import Outbox, Uplink

    settings = AgentSettings(device_id=device_id, hub_url=hub_url, device_token=device_token,
                             uplink_predictions=False, mining_top_k=len(frames), mining_control_share=0.0,
                             mining_rate_per_min=float(len(frames)))
    outbox = Outbox(store / "outbox.db")
    try:
        miner = Miner(settings, outbox, seed=0)
        model = SimpleNamespace(name="shapes", revision=1, sha256="")   # no deployment: the device's project
        for i, frame in enumerate(frames):   # a score per frame, so the window's top-k keeps them all
            miner.observe(model, frame, {"detections": [], "scores": {"entropy": 1.0 - i / (2 * len(frames))}})
        assert miner.flush() == len(frames), miner.counts
        sent = Uplink(outbox, device_id, None, hub_url=hub_url, token=device_token).drain()["captures"]
        assert outbox.stats()["refused"] == 0, outbox.stats()
    finally:
        outbox.close()
    return sent
