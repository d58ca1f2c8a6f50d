"""Mining and inference over the candidate index with a trained checkpoint.

Mining score (higher = more worth labelling): :mod:`detkit.scoring` over the image's candidate
detections (score >= ``conf_threshold``, default 0.05), reduced by max over boxes — the same
scores the device agent mines with. Default ``uncertainty: entropy``: the binary entropy of the
most uncertain detection (a detection at 0.5 scores 1, at 0.05 or 0.95 about 0.29). An image with
no candidate at all scores 0: the model sees nothing there, confidently.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from detkit.errors import BadInput
from detkit.runtime.prepost import decode_centernet, unletterbox
from detkit.scoring import batch_image_scores
from executor.contract import Env, read_index, resolve_input_path
from executor.data import load_images
from executor.outputs import PhaseMonitor, write_infer_result, write_mining_result
from executor.predict import load_model, pick_device, raw_outputs

log = logging.getLogger(__name__)
MINING_MAX_DET = 100


def uncertainty_scores(per_image: list[np.ndarray], kind: str = "entropy") -> list[float]:
    """Image scores from each image's detection scores (:func:`detkit.scoring.batch_image_scores`)."""
    return [float(s[kind]) for s in batch_image_scores(per_image)]


def model_path(env: Env, cfg: dict[str, Any]) -> Path:
    """The ``.pt`` named by ``model_params_path`` (or ``pretrained_model_params``)."""
    paths = cfg.get("model_params_path") or cfg.get("pretrained_model_params") or []
    pts = [p for p in paths if p.endswith(".pt")]
    if not pts:
        raise BadInput(f"{env.input['config_file']}: model_params_path names no .pt model of this executor: {paths}")
    return resolve_input_path(env, pts[0], "models_dir")


def run_candidates(env: Env, cfgs: dict[str, dict[str, Any]], monitor: PhaseMonitor) -> None:
    """Run the model once over the candidate index; write the mining and/or infer result.

    ``cfgs`` maps ``"mining"`` and/or ``"infer"`` to that task's validated config.
    """
    mining, infer = "mining" in cfgs, "infer" in cfgs
    cfg = cfgs["infer"] if infer else cfgs["mining"]
    device = pick_device(cfg.get("device", "auto"), cfg.get("gpu_count"))
    model, spec = load_model(model_path(env, cfg), device)
    rows = read_index(env, "candidate_index_file", with_annotations=False)
    if not rows:
        raise BadInput(f"candidate index is empty: {env.input['candidate_index_file']}")
    mine_conf = cfgs["mining"]["conf_threshold"] if mining else 0.0
    infer_conf = cfgs["infer"]["conf_threshold"] if infer else 0.0
    max_det = cfg.get("max_det", 100)
    bs = cfg["batch_size"]
    scores: list[tuple[str, float]] = []
    detection: dict[str, list[dict]] = {}
    for start in range(0, len(rows), bs):
        paths = [p for p, _ in rows[start : start + bs]]
        images, lbs = load_images(paths, spec.input_size)
        heatmap, distances = raw_outputs(model, images, spec, device)
        if mining:
            decoded = decode_centernet(heatmap, distances, spec.stride, mine_conf, MINING_MAX_DET)
            values = uncertainty_scores([s for _, s, _ in decoded], cfgs["mining"]["uncertainty"])
            scores += [(str(p), v) for p, v in zip(paths, values, strict=True)]
        if infer:
            for p, lb, (b, s, c) in zip(paths, lbs, decode_centernet(heatmap, distances, spec.stride, infer_conf, max_det),
                                        strict=True):
                detection[p.name] = _boxes_json(unletterbox(b, lb), s, c, spec.class_names)
        monitor((start + len(paths)) / len(rows))
    if mining:
        write_mining_result(env.output["mining_result_file"], scores)
        log.info("mining: scored %d images", len(scores))
    if infer:
        write_infer_result(env.output["infer_result_file"], detection)
        log.info("infer: %d images, %d boxes", len(detection), sum(len(v) for v in detection.values()))


def _boxes_json(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, names: list[str]) -> list[dict]:
    """YMIR's infer box records: integer ``x, y, w, h`` (the platform's Rect is int32)."""
    out = []
    for (x1, y1, x2, y2), s, c in zip(boxes.tolist(), scores.tolist(), classes.tolist(), strict=True):
        x, y = round(x1), round(y1)
        out.append({"box": {"x": x, "y": y, "w": max(0, round(x2) - x), "h": max(0, round(y2) - y)},
                    "class_name": names[c], "score": round(float(s), 6)})
    return out
