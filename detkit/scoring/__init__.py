"""Mining scores: which images is the model least sure about? One implementation for the hub's
mining jobs, the built-in executor and the device agent.

:data:`ALGORITHMS` maps each mining algorithm's name to an :class:`Algorithm`: what it needs
(``boxes``: the detections of one pass; ``heatmap``: the detector's class heatmaps; ``views``:
detections of augmented views, i.e. extra inferences; ``keys``: only the images' names) and its
cost in extra inferences per image. :func:`score_batch` scores a batch with any of them. Higher
scores are more worth labelling. Formulas are in each function's module:

=================== ======== ===== ===============================================================
name                needs    extra formula (per image)
=================== ======== ===== ===============================================================
``random``          keys     0     ``U(seed, key)`` (:mod:`.rerank`)
``entropy``         boxes    0     max over boxes of the normalised entropy (:mod:`.boxes`)
``least_confidence`` boxes   0     max over boxes of ``1 - max_c p``
``margin``          boxes    0     max over boxes of ``1 - (p1 - p2)``
``borderline``      boxes    0     ``#{boxes : |s - threshold| <= band}`` (alias ``near_threshold``)
``aldd``            heatmap  0     windowed mutual information on the heatmaps (:mod:`.heatmap`)
``cald``            views    3     ``1 - min`` weighted consistency over 3 views (:mod:`.consistency`)
=================== ======== ===== ===============================================================

:func:`class_balanced_rerank` re-orders any of them so rare classes get picked early.
:data:`SCORES` / :func:`image_scores` / :func:`batch_image_scores` are the single-pass box scores
per image, as the device agent reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detkit.scoring.base import Dets, ScoringInputError, box_probs
from detkit.scoring.boxes import (
    SCORES,
    batch_image_scores,
    borderline,
    entropy,
    image_scores,
    least_confidence,
    margin,
    near_threshold,
)
from detkit.scoring.consistency import VIEWS, Detect, cald, make_views, view_detections
from detkit.scoring.heatmap import aldd, aldd_map
from detkit.scoring.rerank import class_balanced_rerank, random_scores

__all__ = [
    "ALGORITHMS", "DEFAULT_ALGORITHM", "SCORES", "VIEWS", "Algorithm", "Dets", "ScoringInputError",
    "aldd", "aldd_map", "algorithm", "batch_image_scores", "borderline", "cald", "class_balanced_rerank",
    "entropy", "image_scores", "least_confidence", "make_views", "margin", "near_threshold",
    "random_scores", "score_batch", "view_detections",
]

DEFAULT_ALGORITHM = "aldd"


@dataclass(frozen=True)
class Algorithm:
    """A mining algorithm: its name, what it needs, its extra inferences per image, its one-line formula."""

    name: str
    needs: str  # "boxes" | "heatmap" | "views" | "keys"
    extra_inferences: int
    formula: str
    single_pass_boxes: bool = False  # usable wherever only one pass's boxes exist (the device agent)


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("aldd", "heatmap", 0, "mean over grid cells of max_x sum_c [H(avg_W p_c) - avg_W H(p_c)]"),
    Algorithm("cald", "views", len(VIEWS), "1 - min over views and boxes of 1 - s(1 - IoU(1 - |s - t|))"),
    Algorithm("entropy", "boxes", 0, "max_k -sum p log p / log C", True),
    Algorithm("least_confidence", "boxes", 0, "max_k 1 - max_c p", True),
    Algorithm("margin", "boxes", 0, "max_k 1 - (p_top1 - p_top2)", True),
    Algorithm("borderline", "boxes", 0, "#{k : |s_k - threshold| <= band}", True),
    Algorithm("random", "keys", 0, "U(seed, key) in [0, 1)"),
)}
ALIASES = {"near_threshold": "borderline"}
_PARAMS = {"heatmap": {"window", "reduce", "cell", "k"}, "views": {"weighted"}}


def algorithm(name: str) -> Algorithm:
    """The :class:`Algorithm` called ``name`` (or an alias); an unknown name raises :class:`BadInput`."""
    if not isinstance(name, str) or (name not in ALGORITHMS and name not in ALIASES):
        raise ScoringInputError(f"unknown mining algorithm {name!r}: choose from {', '.join(ALGORITHMS)}")
    return ALGORITHMS[ALIASES.get(name, name)]


def _need(value: Any, what: str, name: str) -> Any:
    if value is None:
        raise ScoringInputError(f"mining algorithm {name!r} needs {what}")
    return value


def score_batch(
    name: str,
    *,
    dets: Sequence[Any] | None = None,
    heatmap: np.ndarray | None = None,
    images: np.ndarray | None = None,
    detect: Detect | None = None,
    views: Sequence[Sequence[Dets]] | None = None,
    keys: Sequence[str] | None = None,
    threshold: float = 0.5,
    band: float = 0.1,
    seed: int = 0,
    **params: Any,
) -> np.ndarray:
    """Scores ``(N,)`` of one batch under algorithm ``name``; pass what its ``needs`` says.

    ``dets``: per image ``(boxes, scores, classes)`` (or box probabilities (K,)/(K, C) for the box
    scores); ``heatmap``: (N, C, H, W) probabilities; ``views``: ``[view][image]`` detections mapped
    back, or ``images`` (N, H, W, 3) + ``detect`` to run the views here; ``keys``: image names
    (``random``; cutout placement). ``params`` go to :func:`aldd` (window, reduce, cell, k) or
    :func:`cald` (weighted).
    """
    algo = algorithm(name)
    extra = set(params) - _PARAMS.get(algo.needs, set())
    if extra:
        raise ScoringInputError(f"mining algorithm {algo.name!r} takes no parameter {', '.join(sorted(extra))}")
    if algo.needs == "keys":
        return random_scores(_need(keys, "keys (the images' names)", name), seed)
    if algo.needs == "heatmap":
        return aldd(_need(heatmap, "the class heatmaps (N, C, H, W)", name), **params)
    if algo.needs == "views":
        dets = _need(dets, "the original detections", name)
        if views is None:
            _need(images, "views, or images and a detect function", name)
            views = view_detections(images, _need(detect, "a detect function", name), keys=keys, seed=seed)
        return cald(dets, views, **params)
    per_image = [box_probs(d, f"{name}: image {i}") for i, d in enumerate(_need(dets, "detections", name))]
    key = "near_threshold" if algo.name == "borderline" else algo.name
    return np.array([s[key] for s in batch_image_scores(per_image, threshold, band)], dtype=np.float64)


