"""Mining and inference over the candidate index with a trained checkpoint.

Mining score (higher = more worth labelling): ``mining_algorithm`` from :mod:`detkit.scoring`, the
implementation the hub and the device agent share (formulas and costs: docs/mining-scores.md).

* ``aldd`` (default, as in YMIR): disagreement of neighbouring cells of the class heatmaps, read
  from the same forward pass: no extra inference;
* ``cald``: consistency of the boxes under three augmented views (flip, 0.8x resize, cutout): three
  extra forward passes per image;
* ``entropy``, ``least_confidence``, ``margin``, ``borderline``: the candidate detections (score >=
  ``conf_threshold``), reduced by max over boxes (borderline: a count) — the scores the agent mines
  with; an image with no candidate at all scores 0;
* ``random``: fixed by ``(seed, asset file name)``, the baseline.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from detkit import scoring
from detkit.errors import BadInput
from detkit.manifest import ModelSpec
from detkit.runtime.prepost import decode_centernet, unletterbox
from executor.contract import Env, read_index, resolve_input_path
from executor.data import load_images
from executor.outputs import PhaseMonitor, write_infer_result, write_mining_result
from executor.predict import load_model, pick_device, raw_outputs

log = logging.getLogger(__name__)
MINING_MAX_DET = 100


def uncertainty_scores(per_image: list[np.ndarray], kind: str = "entropy") -> list[float]:
    """Box-score image scores from each image's detection scores (:func:`detkit.scoring.score_batch`)."""
    return scoring.score_batch(kind, dets=per_image).tolist()


def model_path(env: Env, cfg: dict[str, Any]) -> Path:
    """The ``.pt`` named by ``model_params_path`` (or ``pretrained_model_params``)."""
    paths = cfg.get("model_params_path") or cfg.get("pretrained_model_params") or []
    pts = [p for p in paths if p.endswith(".pt")]
    if not pts:
        raise BadInput(f"{env.input['config_file']}: model_params_path names no .pt model of this executor: {paths}")
    return resolve_input_path(env, pts[0], "models_dir")


def mining_scores(cfg: dict[str, Any], keys: list[str], images: np.ndarray, heatmap: np.ndarray,
                  distances: np.ndarray, model: Any, spec: ModelSpec, device: Any) -> np.ndarray:
    """Scores ``(N,)`` of one batch under ``cfg["mining_algorithm"]``; cald runs its views through ``model``."""
    algo = scoring.algorithm(cfg.get("mining_algorithm", scoring.DEFAULT_ALGORITHM))
    conf = cfg.get("conf_threshold", 0.05)

    def detect(views: np.ndarray) -> list[scoring.Dets]:
        return decode_centernet(*raw_outputs(model, views, spec, device), spec.stride, conf, MINING_MAX_DET)

    dets = None
    if algo.needs in ("boxes", "views"):
        dets = decode_centernet(heatmap, distances, spec.stride, conf, MINING_MAX_DET)
    return scoring.score_batch(algo.name, dets=dets, heatmap=heatmap, images=images, detect=detect, keys=keys,
                               threshold=cfg.get("borderline_threshold", 0.5), band=cfg.get("borderline_band", 0.1),
                               seed=cfg.get("seed", 0))


def run_candidates(env: Env, cfgs: dict[str, dict[str, Any]], monitor: PhaseMonitor) -> None:
    """Run the model once over the candidate index; write the mining and/or infer result.

    ``cfgs`` maps ``"mining"`` and/or ``"infer"`` to that task's validated config.
    """
    mining, infer = "mining" in cfgs, "infer" in cfgs
    cfg = cfgs["infer"] if infer else cfgs["mining"]
    if mining:
        algo = scoring.algorithm(cfgs["mining"].get("mining_algorithm", scoring.DEFAULT_ALGORITHM))
        log.info("mining: %s (needs %s, %d extra inferences per image)", algo.name, algo.needs,
                 algo.extra_inferences)
    device = pick_device(cfg.get("device", "auto"), cfg.get("gpu_count"))
    model, spec = load_model(model_path(env, cfg), device)
    rows = read_index(env, "candidate_index_file", with_annotations=False)
    if not rows:
        raise BadInput(f"candidate index is empty: {env.input['candidate_index_file']}")
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
            keys = [p.name for p in paths]  # YMIR names assets by hash: the same image, the same key
            values = mining_scores(cfgs["mining"], keys, images, heatmap, distances, model, spec, device)
            scores += [(str(p), float(v)) for p, v in zip(paths, values.tolist(), strict=True)]
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
