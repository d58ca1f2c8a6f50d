"""Label Studio's JSON, both ways: the labeling config, tasks with predictions, and annotations back to boxes.

Pure functions (no hub state, no HTTP): the Label Studio backend (``hub.labeling.label_studio``) and the file
export/import (``hub.labeling.files``) share them. Facts of Label Studio's format that shape them:

* a box is a result of ``type: rectanglelabels`` whose ``from_name``/``to_name`` name the config's
  ``RectangleLabels`` and ``Image`` tags, with ``original_width``/``original_height`` in pixels and ``value``
  ``x, y, width, height`` in percent of the image (0-100) and ``rectanglelabels: [label]``;
* ``value.rotation`` is in degrees, clockwise about the box's top-left corner: a rotated box is imported as its
  axis-aligned envelope, and the import says so;
* recent versions refuse predictions naming a label the config lacks or holding a value over 100, so predictions
  are restricted to the task's classes and clipped into the image;
* an export keeps cancelled annotations (dropped here) and may hold several per task (the ``ground_truth`` one is
  taken, else the one updated last);
* Label Studio gives imported tasks its own ids, so the hub's asset id (sha1) travels in ``data.ymir_sha1``.

Boxes on the hub's side are dicts ``{x1, y1, x2, y2, class}`` in pixels (``source`` and ``confidence`` optional).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from xml.sax.saxutils import quoteattr

from detkit.errors import BadInput

FROM_NAME = "label"
TO_NAME = "image"
RECT = "rectanglelabels"
MODEL_VERSION = "ymir-pre-annotations"
_SHA1 = re.compile(r"[0-9a-f]{40}")
# percent values are rounded to this many decimals: far below a pixel even on a 100k px image
_PCT_DIGITS = 6


def labeling_config(classes) -> str:
    """The labeling config (XML) of a task: one image, one ``RectangleLabels`` with a ``Label`` per class."""
    names = [str(c) for c in classes or ()]
    if not names:
        raise BadInput("Label Studio labeling config: no classes")
    if len(set(names)) != len(names):
        raise BadInput(f"Label Studio labeling config: classes repeat ({', '.join(names)})")
    labels = "".join(f"\n    <Label value={quoteattr(n)}/>" for n in names)
    return (f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
            f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">{labels}\n  </RectangleLabels>\n</View>\n')


def _pct(v: float) -> float:
    return round(min(100.0, max(0.0, v)), _PCT_DIGITS)


def boxes_to_results(boxes, width: int, height: int, *, from_name: str = FROM_NAME,
                     to_name: str = TO_NAME) -> list[dict]:
    """Pixel boxes as Label Studio ``rectanglelabels`` results (percent, clipped into 0-100)."""
    if not width or not height or width <= 0 or height <= 0:
        raise BadInput(f"Label Studio results: image size {width}x{height} is not usable")
    out = []
    for i, b in enumerate(boxes):
        x = _pct(float(b["x1"]) / width * 100.0)
        y = _pct(float(b["y1"]) / height * 100.0)
        # width/height clipped so that x + width never passes 100 (Label Studio refuses it)
        w = round(max(0.0, min(_pct(float(b["x2"]) / width * 100.0), 100.0) - x), _PCT_DIGITS)
        h = round(max(0.0, min(_pct(float(b["y2"]) / height * 100.0), 100.0) - y), _PCT_DIGITS)
        w, h = min(w, 100.0 - x), min(h, 100.0 - y)
        result = {"id": f"ymir{i}", "type": RECT, "from_name": from_name, "to_name": to_name,
                  "original_width": int(width), "original_height": int(height), "image_rotation": 0,
                  "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                            "rectanglelabels": [str(b["class"])]}}
        if b.get("confidence") is not None:
            result["score"] = float(b["confidence"])
        out.append(result)
    return out


def task_json(sha1: str, image_url: str, width: int, height: int, boxes_pred, classes, *,
              model_version: str = MODEL_VERSION) -> dict:
    """One Label Studio task: the image URL and our sha1 in ``data``, the pre-annotations as a prediction.

    Predictions of classes the task does not have are left out (Label Studio refuses unknown labels)."""
    task: dict = {"data": {"image": image_url, "ymir_sha1": sha1}}
    keep = set(classes or ())
    pred = [b for b in boxes_pred or () if b.get("class") in keep]
    if pred:
        results = boxes_to_results(pred, width, height)
        scores = [r["score"] for r in results if "score" in r]
        prediction = {"model_version": model_version, "result": results}
        if scores:
            prediction["score"] = round(sum(scores) / len(scores), 6)
        task["predictions"] = [prediction]
    return task


def _when(value) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp


def pick_annotation(annotations) -> dict | None:
    """The annotation to import: cancelled ones dropped; the ``ground_truth`` one, else the latest updated."""
    live = [a for a in annotations or () if isinstance(a, dict) and not a.get("was_cancelled")]
    if not live:
        return None
    pool = [a for a in live if a.get("ground_truth")] or live
    floor = datetime.min.replace(tzinfo=UTC)

    def key(a: dict):
        stamp = _when(a.get("updated_at")) or _when(a.get("created_at")) or floor
        ident = a.get("id") if isinstance(a.get("id"), int | float) else -1
        return stamp, ident

    return max(pool, key=key)


def _corners_envelope(x: float, y: float, w: float, h: float, degrees: float) -> tuple[float, ...]:
    """The axis-aligned envelope of a w x h box turned ``degrees`` clockwise (y down) about its corner (x, y)."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    xs, ys = [], []
    for dx, dy in ((0.0, 0.0), (w, 0.0), (w, h), (0.0, h)):
        xs.append(x + dx * c - dy * s)
        ys.append(y + dx * s + dy * c)
    return min(xs), min(ys), max(xs), max(ys)


def _num(value, name: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} is not finite")
    return v


def results_to_boxes(results, width: int | None, height: int | None, classes=None) -> tuple[list[dict], list[str]]:
    """Label Studio results as pixel boxes, and one line per result changed or dropped.

    ``width``/``height`` are the image's (None: each result's ``original_width/height``). Results that are not
    rectangles are ignored; a rotated box becomes its axis-aligned envelope; a box sticking out of the image is
    clipped; a box of zero size, without a label, or (when ``classes`` is given) of a label not in ``classes``
    is dropped. Every change is noted."""
    boxes: list[dict] = []
    problems: list[str] = []
    known = None if classes is None else {str(c) for c in classes}
    for i, r in enumerate(results or ()):
        where = f"result {i}"
        if not isinstance(r, dict) or not isinstance(r.get("value"), dict):
            problems.append(f"{where}: not a Label Studio result object, ignored")
            continue
        value = r["value"]
        kind = r.get("type") or (RECT if RECT in value else None)
        if kind != RECT:
            problems.append(f"{where}: type {kind!r} is not a box (rectanglelabels), ignored")
            continue
        labels = value.get(RECT) or []
        if not isinstance(labels, list) or not labels:
            problems.append(f"{where}: a box without a label, dropped")
            continue
        label = str(labels[0])
        where = f"{where} ({label})"
        if len(labels) > 1:
            problems.append(f"{where}: {len(labels)} labels {labels}, the first was taken")
        if known is not None and label not in known:
            problems.append(f"{where}: class {label!r} is not one of the task's classes "
                            f"({', '.join(sorted(known))}), dropped")
            continue
        try:
            w_img = _num(width if width else r.get("original_width"), "width")
            h_img = _num(height if height else r.get("original_height"), "height")
            if w_img <= 0 or h_img <= 0:
                raise ValueError("image size must be positive")
            x = _num(value["x"], "x") / 100.0 * w_img
            y = _num(value["y"], "y") / 100.0 * h_img
            bw = _num(value["width"], "width") / 100.0 * w_img
            bh = _num(value["height"], "height") / 100.0 * h_img
            rotation = _num(value.get("rotation") or 0.0, "rotation")
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"{where}: unusable numbers ({exc}), dropped")
            continue
        if bw < 0 or bh < 0:
            problems.append(f"{where}: negative width or height, dropped")
            continue
        if abs(math.remainder(rotation, 360.0)) > 1e-9:
            x1, y1, x2, y2 = _corners_envelope(x, y, bw, bh, rotation)
            problems.append(f"{where}: rotated {rotation:g} degrees: its axis-aligned envelope was imported")
        else:
            x1, y1, x2, y2 = x, y, x + bw, y + bh
        out_by = max(-x1, -y1, x2 - w_img, y2 - h_img)
        x1, x2 = (max(0.0, min(v, w_img)) for v in (x1, x2))
        y1, y2 = (max(0.0, min(v, h_img)) for v in (y1, y2))
        if x2 - x1 <= 1e-6 or y2 - y1 <= 1e-6:
            problems.append(f"{where}: zero size inside the {w_img:g}x{h_img:g} image, dropped")
            continue
        if out_by > 1e-6:
            problems.append(f"{where}: clipped to the {w_img:g}x{h_img:g} image (it stuck out by {out_by:.1f} px)")
        boxes.append({"x1": round(x1, 3), "y1": round(y1, 3), "x2": round(x2, 3), "y2": round(y2, 3),
                      "class": label, "source": "human"})
    return boxes, problems


def _task_sha1(task: dict) -> str | None:
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    sha1 = data.get("ymir_sha1")
    if isinstance(sha1, str) and sha1:
        return sha1
    found = _SHA1.findall(str(data.get("image", "")))  # our image URLs end with the sha1
    return found[-1] if found else None


def _size(annotation: dict | None, task: dict) -> tuple[int | None, int | None]:
    """The image size Label Studio saw: ``original_width/height`` of the first result that has them."""
    pools = [annotation.get("result") if annotation else None]
    pools += [p.get("result") for p in task.get("predictions") or () if isinstance(p, dict)]
    for results in pools:
        for r in results or ():
            if isinstance(r, dict) and r.get("original_width") and r.get("original_height"):
                try:
                    return int(r["original_width"]), int(r["original_height"])
                except (TypeError, ValueError):
                    continue
    return None, None


def parse_export(json_bytes) -> list[tuple[str | None, int | None, int | None, list[dict] | None, list[str]]]:
    """A Label Studio JSON export (``exportType=JSON``) as ``(sha1, width, height, boxes, problems)`` per task.

    ``sha1`` is ``data.ymir_sha1`` (else a sha1 in the image URL, else None); ``width/height`` the size Label
    Studio saw (None when no result says); ``boxes`` None when the task has no annotation to import (none, or
    all cancelled) — the caller leaves that image as it is. Classes are not checked here (the task does that).
    BadInput when the file is not such an export."""
    try:
        doc = json.loads(json_bytes)
    except (ValueError, TypeError) as exc:
        raise BadInput(f"not a Label Studio JSON export: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
        doc = [doc]  # one task on its own
    if not isinstance(doc, list):
        raise BadInput("not a Label Studio JSON export: expected a list of tasks (export type JSON)")
    out = []
    for n, task in enumerate(doc):
        if not isinstance(task, dict):
            raise BadInput(f"not a Label Studio JSON export: item {n} is not a task object")
        sha1 = _task_sha1(task)
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise BadInput(f"not a Label Studio JSON export: task {task.get('id', n)} annotations is not a list")
        problems: list[str] = []
        cancelled = sum(1 for a in annotations if isinstance(a, dict) and a.get("was_cancelled"))
        if cancelled:
            problems.append(f"{cancelled} cancelled annotation(s) dropped")
        chosen = pick_annotation(annotations)
        width, height = _size(chosen, task)
        if chosen is None:
            out.append((sha1, width, height, None, problems))
            continue
        live = len(annotations) - cancelled
        if live > 1:
            how = "the ground-truth one" if chosen.get("ground_truth") else "the one updated last"
            problems.append(f"{live} annotations: {how} (id {chosen.get('id')}) was imported")
        boxes, notes = results_to_boxes(chosen.get("result") or [], width, height)
        out.append((sha1, width, height, boxes, problems + notes))
    return out
