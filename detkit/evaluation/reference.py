"""Run the reference COCO evaluators (pycocotools, faster-coco-eval) on in-memory COCO dicts.

For cross-checks in tests and benchmarks only; both packages are dev dependencies, imported
lazily, and :class:`detkit.errors.Unavailable` says what to install when they are missing.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io

import numpy as np

from detkit.errors import Unavailable

__all__ = ["run_reference", "class_ap"]

_IMPLS = {
    # name: (module with COCO, module with the evaluator, evaluator class)
    "pycocotools": ("pycocotools.coco", "pycocotools.cocoeval", "COCOeval"),
    "faster-coco-eval": ("faster_coco_eval", "faster_coco_eval", "COCOeval_faster"),
}


def run_reference(gt: dict, results: list, impl: str = "pycocotools", copy_inputs: bool = True):
    """Evaluate with a reference implementation; returns its ``COCOeval`` object (stdout muted).

    Inputs are deep-copied first unless ``copy_inputs`` is false (pycocotools writes into them).
    """
    if impl not in _IMPLS:
        raise ValueError(f"unknown reference {impl!r}; known: {', '.join(_IMPLS)}")
    coco_mod, eval_mod, eval_cls = _IMPLS[impl]
    try:
        coco_cls = importlib.import_module(coco_mod).COCO
        evaluator = getattr(importlib.import_module(eval_mod), eval_cls)
    except ImportError as e:
        raise Unavailable(f"{impl} is not installed: pip install 'ymir-edge[dev]' ({e})") from None
    if copy_inputs:
        gt, results = copy.deepcopy(gt), copy.deepcopy(results)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = coco_cls()
        coco.dataset = gt
        coco.createIndex()
        det = coco.loadRes(results)
        ev = evaluator(coco, det, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def class_ap(ev, t=slice(None)) -> np.ndarray:
    """Per-class AP (area all, largest maxDets) from a reference ``COCOeval``; -1 without ground truth."""
    p = np.asarray(ev.eval["precision"])[t, :, :, 0, -1]
    out = []
    for k in range(p.shape[-1]):
        v = p[..., k]
        v = v[v > -1]
        out.append(float(np.mean(v)) if v.size else -1.0)
    return np.array(out)
