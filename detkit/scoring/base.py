"""What every mining score shares: the error it raises and how detections are read."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from detkit.errors import BadInput

EPS = 1e-12

Dets = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes xyxy (K, 4), scores (K,), class ids (K,)


class ScoringInputError(BadInput, ValueError):
    """Bad input to a mining score: a :class:`BadInput` that is also a ``ValueError`` (older callers)."""


def as_dets(d: Any, where: str) -> Dets:
    """``(boxes (K,4), scores (K,), classes (K,))`` from a triple or an object with those attributes."""
    if hasattr(d, "scores") and hasattr(d, "boxes"):
        d = (d.boxes, d.scores, getattr(d, "classes", getattr(d, "class_ids", None)))
    if not isinstance(d, tuple | list) or len(d) != 3:
        raise ScoringInputError(f"{where}: expected (boxes, scores, classes), got {type(d).__name__}")
    boxes = np.asarray(d[0], dtype=np.float64).reshape(-1, 4) if np.size(d[0]) else np.zeros((0, 4))
    scores = np.asarray(d[1], dtype=np.float64).reshape(-1)
    classes = np.zeros(len(scores), np.int64) if d[2] is None else np.asarray(d[2]).reshape(-1)
    if not (len(boxes) == len(scores) == len(classes)):
        raise ScoringInputError(f"{where}: boxes, scores and classes differ in length "
                                f"({len(boxes)}, {len(scores)}, {len(classes)})")
    return boxes, scores, classes


def box_probs(d: Any, where: str) -> np.ndarray:
    """An image's box probabilities for the box scores: (K,) or (K, C); detections give their scores."""
    if isinstance(d, tuple) or hasattr(d, "scores"):
        return as_dets(d, where)[1]
    return np.asarray(d, dtype=np.float64)


def key_uniform(keys: Sequence[str], seed: int = 0) -> np.ndarray:
    """One number in ``[0, 1)`` per key, fixed by ``(seed, key)`` alone: no state, no order dependence."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ScoringInputError(f"seed must be an integer, got {seed!r}")
    words = [int.from_bytes(hashlib.blake2b(f"{int(seed)}\x00{k}".encode(), digest_size=8).digest(), "little")
             for k in keys]
    return (np.asarray(words, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
