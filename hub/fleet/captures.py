"""Edge captures: frames devices selected (edge mining) become assets of the project's
"edge captures" dataset, their predictions ``pred`` annotations, tagged with device, algorithm,
revision, score and reason so mining and labeling can take them.

What a device sends (``agent/uplink.py``): multipart ``frame`` (the image bytes) and ``meta`` (JSON
``{"schema": 1, "record": {id, ts, deployment, revision, sha256, width, height, conf,
detections: [{box, score, class_id, class_name}], scores, latency_ms}, "reason", "score_name",
"score", "format", "mime"}``).

Images are verified and stored by the ingest engine's helpers (:func:`detkit.imaging.decode_image`,
:func:`hub.datasets.ingest.store_asset`) and inserted with :func:`hub.store.assets.insert_version_rows`.
One version collects the frames of one UTC day until it holds ``capture_version_frames``; then
the next one starts. The project is the one of the algorithm that made the predictions (its
model's project), else the device's project.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from datetime import UTC, datetime

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import BadInput
from detkit.imaging import decode_image
from detkit.quality import image_quality
from hub.datasets.ingest import AssetRecord
from hub.db import Database
from hub.store import assets as assets_store
from hub.store import classes as class_store
from hub.store import datasets as ds_store
from hub.store import fleet_algorithms as algo_store

log = logging.getLogger(__name__)
GROUP = "edge captures"
MAX_PIXELS = 50_000_000
MAX_BOXES = 1000
_lock = threading.Lock()  # one capture at a time picks or opens the day's version


def parse_meta(raw: str | None) -> dict:
    """The ``meta`` form field, checked."""
    try:
        meta = json.loads(raw or "")
    except ValueError:
        raise BadInput("meta: expected a JSON object (the capture's record, reason and score)") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("record"), dict):
        raise BadInput("meta: expected {\"record\": {...}, \"reason\", \"score\"}")
    dets = meta["record"].get("detections", [])
    if not isinstance(dets, list) or len(dets) > MAX_BOXES:
        raise BadInput(f"meta.record.detections: expected a list of at most {MAX_BOXES} boxes")
    return meta


def _boxes(dets: list, width: int, height: int) -> list[Box]:
    boxes = []
    for i, d in enumerate(dets):
        try:
            x1, y1, x2, y2 = (float(v) for v in d["box"])
            name, score = str(d["class_name"]), float(d["score"])
        except (KeyError, TypeError, ValueError):
            raise BadInput(f"meta.record.detections[{i}]: expected box [x1, y1, x2, y2], score, class_name") from None
        x1, x2 = max(0.0, min(x1, width)), max(0.0, min(x2, width))
        y1, y2 = max(0.0, min(y1, height)), max(0.0, min(y2, height))
        if x2 > x1 and y2 > y1:
            boxes.append(Box(x1, y1, x2, y2, class_store.normalize(name), confidence=score))
    return boxes


def _project_for(database: Database, device: dict, record: dict) -> tuple[int, dict | None]:
    sha = record.get("sha256")
    algo = algo_store.algorithm_by_sha(database, sha) if isinstance(sha, str) and sha else None
    project_id = (algo or {}).get("project_id") or device.get("project_id")
    if not project_id:
        raise BadInput(f"capture from {device['id']}: neither its algorithm nor the device belongs to a project "
                       "(provision the device with a project)")
    return project_id, algo


def _open_version(database: Database, project_id: int, frames_per_version: int) -> dict:
    """Today's edge-captures version with room left, else a new one (made ready at once: it grows)."""
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    group = ds_store.get_or_create_group(database, project_id, GROUP, "frames selected on devices (edge mining)")
    versions = [v for v in ds_store.list_versions(database, group_id=group["id"]) if v["state"] == "ready"]
    if versions and versions[-1]["source"].get("day") == day and versions[-1]["images"] < frames_per_version:
        return versions[-1]
    v = ds_store.create_version(database, group["id"], source={"kind": "edge", "day": day}, operation="edge-captures",
                                note=f"frames captured on devices, {day}")
    with database.write() as db:
        ds_store.finish_version(db, v["id"], {"edge": True, "day": day})
    return ds_store.get_version(database, v["id"])


def capture_versions(database: Database, project_id: int) -> list[dict]:
    """The project's edge-captures versions that hold frames (ready, oldest first): mining candidates."""
    group = next((g for g in ds_store.list_groups(database, project_id) if g["name"] == GROUP), None)
    if group is None:
        return []
    return [v for v in group["versions"] if v["state"] == "ready" and v["images"]]


def ingest_capture(database: Database, settings, device: dict, frame: bytes, meta: dict) -> dict:
    """Store one captured frame with its predictions; returns ``{version_id, sha1, boxes, duplicate}``."""
    if not frame:
        raise BadInput("frame: the image bytes are missing")
    if len(frame) > settings.max_upload_bytes:
        raise BadInput("frame: too large")
    dec = decode_image(frame, MAX_PIXELS, where="frame")
    record = meta["record"]
    boxes = _boxes(record.get("detections", []), dec.width, dec.height)
    project_id, algo = _project_for(database, device, record)
    sha1 = hashlib.sha1(frame).hexdigest()
    settings.asset_store.put(sha1, frame)
    score = meta.get("score")
    tags = {"source": "edge", "device": device["id"], "algorithm": str(record.get("deployment") or ""),
            "revision": str(record.get("revision", "")), "reason": str(meta.get("reason") or ""),
            "score_name": str(meta.get("score_name") or ""),
            "score": f"{float(score):.6f}" if isinstance(score, int | float) and not isinstance(score, bool) else "",
            "record": str(record.get("id") or "")[:64], "captured_at": str(record.get("ts") or time.time())}
    if algo:
        tags["algorithm_id"] = str(algo["id"])
    pred = ImageAnnotation(filename="", width=dec.width, height=dec.height, boxes=boxes, tags=tags)
    ext = {"jpeg": "jpg"}.get(dec.format, dec.format)
    rec = AssetRecord(sha1, dec.format, dec.width, dec.height, len(frame),
                      f"{device['id']}/{tags['record'] or sha1}.{ext}", image_quality(dec.grey), gt=None, pred=pred)
    ids = class_store.ensure_classes(database, sorted({b.name for b in boxes})) if boxes else {}
    with _lock:
        version = _open_version(database, project_id, settings.capture_version_frames)
        with database.write() as db:
            dup = db.execute("SELECT 1 FROM version_assets WHERE version_id = ? AND asset_sha1 = ?",
                             [version["id"], sha1]).fetchone()
            if not dup:
                assets_store.insert_version_rows(db, version["id"], [rec], ids.get)
                ds_store.finish_version(db, version["id"], {"edge": True, "day": version["source"].get("day")})
    return {"version_id": version["id"], "project_id": project_id, "sha1": sha1, "boxes": len(boxes),
            "duplicate": bool(dup)}
