"""Helpers for the labeling tests: a small project whose version holds predictions (pre-annotations) and asset
tags, imported through the API like any user's zip."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from hub_helpers import jpeg, wait_ready

from detkit.annotations import Box, ImageAnnotation
from detkit.io.voc import to_voc

#: stem -> (gt boxes, pred boxes (class, x1, y1, x2, y2, confidence), asset tags); images are 64x48
IMAGES = {
    "a": ([("circle", 2, 3, 20, 30)], [("circle", 3, 4, 21, 29, 0.9), ("dog", 1, 1, 9, 9, 0.8)],
          {"mining_score": "0.91"}),
    "b": ([("square", 10, 10, 40, 40)], [("square", 11, 9, 41, 39, 0.7)], {"mining_score": "0.50"}),
    "c": ([], [], {"mining_score": "0.10"}),
    "d": ([("triangle", 30, 5, 60, 45)], [], {}),
}


def labeling_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for stem, (gt, pred, tags) in IMAGES.items():
            digest = hashlib.sha1(f"lab-{stem}".encode()).digest()
            zf.writestr(f"images/{stem}.jpg", jpeg((digest[0], digest[1], digest[2])))
            g = ImageAnnotation(filename=f"{stem}.jpg", width=64, height=48, tags=tags,
                                boxes=[Box(*b[1:], b[0]) for b in gt])
            p = ImageAnnotation(filename=f"{stem}.jpg", width=64, height=48,
                                boxes=[Box(*b[1:5], b[0], confidence=b[5]) for b in pred])
            zf.writestr(f"gt/{stem}.xml", to_voc(g))
            zf.writestr(f"pred/{stem}.xml", to_voc(p))
    return path


def labeling_project(api, tmp_path: Path, project: str = "lab") -> dict:
    """Project ``project`` (targets circle, square, triangle; class dog exists but is no target) with the
    version of :data:`IMAGES`; returns ``{"project", "version_id", "sha1": {stem: sha1}}``."""
    r = api.post("/api/v1/projects", json={"name": project, "classes": ["circle", "square", "triangle"],
                                          "add_classes": True})
    assert r.status_code == 201, r.get_json()
    api.post("/api/v1/classes", json={"name": "dog"})
    path = labeling_zip(tmp_path / f"{project}.zip")
    data = {"file": (io.BytesIO(path.read_bytes()), path.name), "name": "pool"}
    r = api.post(f"/api/v1/projects/{project}/datasets/import", data=data, content_type="multipart/form-data")
    assert r.status_code == 202, r.get_json()
    v = wait_ready(api, r.get_json()["version_id"])
    assert v["state"] == "ready", v
    assets = api.get(f"/api/v1/versions/{v['id']}/assets?limit=50").get_json()["assets"]
    return {"project": project, "version_id": v["id"],
            "sha1": {Path(a["filename"]).stem: a["sha1"] for a in assets}}


def create_task(api, project: str, version_id: int, **fields) -> dict:
    r = api.post(f"/api/v1/projects/{project}/labeling/tasks", json={"version_id": version_id, **fields})
    assert r.status_code == 201, r.get_json()
    return r.get_json()
