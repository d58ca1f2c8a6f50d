"""Helpers (no tests) for the diagnosis and analysis tests: zips with predictions, imports through the API."""

from __future__ import annotations

import io
import random
from pathlib import Path

from hub_helpers import make_zip, wait_ready

from detkit.annotations import Box, ImageAnnotation
from detkit.io.voc import to_voc


def pred_xml(stem: str, boxes: list[tuple]) -> bytes:
    """A VOC file of predictions ``(name, x1, y1, x2, y2, confidence)``."""
    ann = ImageAnnotation(filename=f"{stem}.jpg", width=64, height=48)
    ann.boxes = [Box(b[1], b[2], b[3], b[4], b[0], confidence=b[5]) for b in boxes]
    return to_voc(ann)


def scenes(n: int = 8, seed: int = 0) -> tuple[dict, dict]:
    """Ground truth and jittered predictions (with misses and false alarms) for ``n`` 64x48 images."""
    rng = random.Random(seed)
    gt, pred = {}, {}
    for i in range(n):
        stem = f"img{i:02d}"
        boxes, preds = [], []
        for _ in range(rng.randint(0 if i == n - 1 else 1, 3)):
            name = rng.choice(["cat", "dog"])
            x1, y1 = rng.uniform(0, 30), rng.uniform(0, 20)
            w, h = rng.uniform(8, 30), rng.uniform(8, 25)
            boxes.append((name, round(x1, 2), round(y1, 2), round(min(64, x1 + w), 2), round(min(48, y1 + h), 2)))
        for b in boxes:
            if rng.random() < 0.8:
                j = [rng.uniform(-3, 3) for _ in range(4)]
                preds.append((b[0], max(0, b[1] + j[0]), max(0, b[2] + j[1]), min(64, b[3] + j[2]),
                              min(48, b[4] + j[3]), round(rng.uniform(0.3, 0.99), 3)))
        if rng.random() < 0.6:
            preds.append((rng.choice(["cat", "dog"]), 2.0, 2.0, 20.0, 18.0, round(rng.uniform(0.05, 0.6), 3)))
        gt[stem], pred[stem] = boxes, preds
    return gt, pred


def pred_zip(path: Path, gt: dict, pred: dict | None, model: str = "m1") -> Path:
    """A YMIR-layout zip with ``gt/`` and (when ``pred`` is given) ``pred/`` plus ``pred/meta.yaml``."""
    extra = {}
    if pred is not None:
        extra = {f"pred/{stem}.xml": pred_xml(stem, boxes) for stem, boxes in pred.items()}
        extra["pred/meta.yaml"] = f"model: {model}\n".encode()
    return make_zip(path, gt, extra=extra)


def setup_project(api, name: str = "diag", classes=("cat", "dog")) -> dict:
    for c in classes:
        api.post("/api/v1/classes", json={"name": c})
    r = api.post("/api/v1/projects", json={"name": name, "classes": list(classes)})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def upload(api, path: Path, project: str = "diag", name: str | None = None) -> dict:
    """Import a zip through the API and wait until it is ready."""
    data = {"file": (io.BytesIO(path.read_bytes()), path.name)}
    if name:
        data["name"] = name
    r = api.post(f"/api/v1/projects/{project}/datasets/import", data=data, content_type="multipart/form-data")
    assert r.status_code == 202, r.get_json()
    v = wait_ready(api, r.get_json()["version_id"])
    assert v["state"] == "ready", v
    return v


def run_job(app, job_id: str, timeout: float = 60) -> dict:
    """Run one queued job with a real runner of the app's workspace; returns the finished job row."""
    from hub.jobs.setup import build_runner

    state = app.extensions["ymir"]
    runner = build_runner(state.settings, state.database, only_jobs={job_id})
    try:
        runner.start()
        return runner.wait(job_id, timeout=timeout)
    finally:
        runner.stop()
