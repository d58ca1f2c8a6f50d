"""Single-pass box scores: how unsure is the detector about the boxes it found?

Per box, a detector gives either the probability of its top class (shape ``(K,)``) or a class
distribution (shape ``(K, C)``). Each score maps boxes to ``[0, 1]`` where 1 is most uncertain:

* ``least_confidence``: ``1 - max_c p``;
* ``margin``: ``1 - (p_top1 - p_top2)``; for a single probability the two-way margin
  ``1 - |2p - 1|`` (a box at 0.5 is a coin toss between object and background);
* ``entropy``: Shannon entropy normalised by its maximum (``log C``, or ``log 2`` for a single
  probability treated as object-vs-background);
* ``borderline`` (old name ``near_threshold``): number of boxes whose score lies within ``band`` of
  the decision threshold (an integer count, not in ``[0, 1]``).

:func:`image_scores` reduces the box scores of one image (by ``max``: one confusing object makes
a frame worth labelling), :func:`batch_image_scores` does the same for many images at once
without a Python loop over boxes. An image without boxes scores 0 everywhere. None of these needs
an extra inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detkit.scoring.base import EPS, ScoringInputError

#: The per-image scores :func:`batch_image_scores` returns (what the device agent may rank by).
SCORES = ("least_confidence", "margin", "entropy", "near_threshold")


def _probs(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim not in (1, 2):
        raise ScoringInputError(f"box probabilities must have shape (K,) or (K, C), got {p.shape}")
    return np.clip(p, 0.0, 1.0)


def least_confidence(p: np.ndarray) -> np.ndarray:
    """Per box ``1 - max probability``; ``p`` is (K,) or (K, C)."""
    p = _probs(p)
    top = p if p.ndim == 1 else p.max(axis=1, initial=0.0)
    return 1.0 - top


def margin(p: np.ndarray) -> np.ndarray:
    """Per box ``1 - (top1 - top2)``; for (K,) the two-way margin ``1 - |2p - 1|``."""
    p = _probs(p)
    if p.ndim == 1:
        return 1.0 - np.abs(2.0 * p - 1.0)
    if p.shape[1] < 2:
        return 1.0 - np.abs(2.0 * p[:, 0] - 1.0)
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1])


def entropy(p: np.ndarray) -> np.ndarray:
    """Per box entropy in ``[0, 1]``: normalised by ``log C`` (or ``log 2`` for (K,))."""
    p = _probs(p)
    if p.ndim == 1:
        q = np.stack([p, 1.0 - p], axis=1)
    else:
        s = p.sum(axis=1, keepdims=True)
        q = np.divide(p, s, out=np.zeros_like(p), where=s > EPS)
    c = max(q.shape[1], 2)
    h = -(q * np.log(np.maximum(q, EPS))).sum(axis=1)
    return np.clip(h / np.log(c), 0.0, 1.0)


def borderline(scores: np.ndarray, threshold: float = 0.5, band: float = 0.1) -> int:
    """Number of boxes whose top score is within ``band`` of ``threshold``: ``#{k : |s_k - t| <= band}``."""
    s = _probs(scores)
    top = s if s.ndim == 1 else s.max(axis=1, initial=0.0)
    return int(np.count_nonzero(np.abs(top - threshold) <= band))


near_threshold = borderline  # the name the agent and its settings know


def image_scores(p: np.ndarray, threshold: float = 0.5, band: float = 0.1) -> dict[str, float]:
    """All scores of one image, reduced over its boxes by max (see module docstring)."""
    return batch_image_scores([p], threshold, band)[0]


def batch_image_scores(
    per_image: Sequence[np.ndarray], threshold: float = 0.5, band: float = 0.1
) -> list[dict[str, float]]:
    """Scores of many images: boxes are concatenated and reduced per image with ``maximum.reduceat``."""
    arrays = [_probs(p) for p in per_image]
    if not arrays:
        return []
    counts = np.array([len(a) for a in arrays], dtype=np.int64)
    nonempty = [a for a in arrays if len(a)]
    out = [{name: 0.0 for name in SCORES} | {"boxes": 0} for _ in arrays]
    if not nonempty:
        return out
    ndims = {a.ndim for a in nonempty}
    if len(ndims) != 1 or (2 in ndims and len({a.shape[1] for a in nonempty}) != 1):
        raise ScoringInputError("every image's box probabilities must have the same shape (K,) or (K, C)")
    allp = np.concatenate(nonempty, axis=0)
    starts = np.concatenate([[0], np.cumsum(counts[counts > 0])[:-1]])
    top = allp if allp.ndim == 1 else allp.max(axis=1)
    per_box = {
        "least_confidence": least_confidence(allp),
        "margin": margin(allp),
        "entropy": entropy(allp),
    }
    reduced = {k: np.maximum.reduceat(v, starts) for k, v in per_box.items()}
    near = np.add.reduceat((np.abs(top - threshold) <= band).astype(np.int64), starts)
    for j, i in enumerate(np.flatnonzero(counts > 0)):
        out[i] = {k: float(reduced[k][j]) for k in per_box} | {
            "near_threshold": float(near[j]),
            "boxes": int(counts[i]),
        }
    return out
