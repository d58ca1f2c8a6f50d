"""The YMIR executor contract, write side: monitor file, training result, mining and infer results.

Writes go to a temporary file then ``os.replace`` so a reader (the hub polling monitor.txt or
result.yaml) never sees half a file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

STATE_PENDING = 1
STATE_RUNNING = 2
STATE_DONE = 3
STATE_ERROR = 4


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (same-folder temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Monitor:
    """``monitor.txt``: one line ``task_id<TAB>timestamp<TAB>percent<TAB>state``.

    ``percent`` is a fraction in [0, 1] as YMIR writes it. Progress is rewritten only when it moved
    by at least ``step`` (a few percent), so a tight loop may call :meth:`progress` freely.
    """

    def __init__(self, path: Path, task_id: str, step: float = 0.02):
        self.path = path
        self.task_id = task_id
        self.step = step
        self._last = -1.0

    def write(self, percent: float, state: int, return_code: int | None = None) -> None:
        percent = min(1.0, max(0.0, percent))
        line = f"{self.task_id}\t{time.time():.3f}\t{percent:.4f}\t{state}"
        if return_code is not None:
            line += f"\t{return_code}"
        atomic_write(self.path, line + "\n")
        self._last = percent

    def progress(self, percent: float) -> None:
        if percent - self._last >= self.step or percent >= 1.0 and self._last < 1.0:
            self.write(percent, STATE_RUNNING)

    def done(self) -> None:
        self.write(1.0, STATE_DONE)

    def error(self, return_code: int) -> None:
        self.write(max(self._last, 0.0), STATE_ERROR, return_code)


class PhaseMonitor:
    """A view of a :class:`Monitor` covering ``[start, start + span]`` of the whole task."""

    def __init__(self, monitor: Monitor, start: float, span: float):
        self.monitor, self.start, self.span = monitor, start, span

    def __call__(self, fraction: float) -> None:
        self.monitor.progress(self.start + self.span * min(1.0, max(0.0, fraction)))


def write_training_result(path: Path, stages: dict[str, dict[str, Any]], best_stage: str) -> None:
    """``models/result.yaml`` with ``model_stages``, ``best_stage_name`` and legacy ``map``."""
    doc = {
        "model_stages": stages,
        "best_stage_name": best_stage,
        "map": float(stages[best_stage]["mAP"]) if best_stage in stages else 0.0,
    }
    atomic_write(path, yaml.safe_dump(doc, sort_keys=False))


def write_mining_result(path: Path, scores: list[tuple[str, float]]) -> None:
    """``result.tsv``: ``asset_path<TAB>score`` lines, most worth labelling first."""
    ordered = sorted(scores, key=lambda r: -r[1])
    atomic_write(path, "".join(f"{asset}\t{score:.6f}\n" for asset, score in ordered))


def write_infer_result(path: Path, detection: dict[str, list[dict[str, Any]]]) -> None:
    """``infer-result.json``: ``{"detection": {asset_name: {"boxes": [...]}}}``."""
    doc = {"detection": {name: {"boxes": boxes} for name, boxes in detection.items()}}
    atomic_write(path, json.dumps(doc))
