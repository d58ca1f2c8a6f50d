"""Random scores and a class-balanced re-ranking of scored images.

``random``: ``score(key) = U(seed, key)`` in ``[0, 1)``, a hash of the seed and the image's key, so
the same image gets the same score in every run and batch — the baseline every active-learning
score has to beat.

:func:`class_balanced_rerank` picks ``k`` images greedily so one frequent class does not fill the
whole labelling budget. With ``n_c`` the number of already picked images showing class ``c`` and
``C(i)`` the classes detected in image ``i`` (an image without detections counts as the class
"none")::

    adjusted(i) = score(i) / (1 + alpha * min_{c in C(i)} n_c)

and each step takes the image with the highest ``adjusted`` (ties: the higher raw score, then the
earlier image). An image is penalised only as much as its least-picked class: it still brings
something new. ``alpha = 0`` keeps the plain score order. Cost: no inference, ``O(k N C)``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from detkit.scoring.base import ScoringInputError, key_uniform


def random_scores(keys: Sequence[str], seed: int = 0) -> np.ndarray:
    """``(N,)`` seeded scores in ``[0, 1)``, one per key, fixed by ``(seed, key)``."""
    return key_uniform([str(k) for k in keys], seed)


def class_balanced_rerank(
    keys: Sequence[str],
    scores: Sequence[float] | np.ndarray,
    classes_per_image: Sequence[Sequence[Hashable]],
    k: int | None = None,
    alpha: float = 1.0,
) -> list[str]:
    """The first ``k`` keys (all when None) in the greedy class-balanced order (module docstring).

    ``classes_per_image[i]``: the classes (ids or names) detected in image ``i``, repeats allowed.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(keys)
    if len(s) != n or len(classes_per_image) != n:
        raise ScoringInputError(f"rerank: {n} keys, {len(s)} scores and {len(classes_per_image)} class lists "
                                "must be as many")
    if not np.isfinite(s).all() or (s < 0).any():
        raise ScoringInputError("rerank: scores must be finite numbers >= 0")
    if isinstance(alpha, bool) or not np.isfinite(alpha) or alpha < 0:
        raise ScoringInputError(f"rerank: alpha must be a number >= 0, got {alpha!r}")
    if k is None:
        k = n
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ScoringInputError(f"rerank: k must be an integer >= 0, got {k!r}")
    k = min(int(k), n)
    index: dict[Hashable, int] = {}
    rows, cols = [], []
    for i, cls in enumerate(classes_per_image):
        for c in (set(cls) or {None}):
            rows.append(i)
            cols.append(index.setdefault(c, len(index)))
    shows = np.zeros((n, max(1, len(index))), dtype=bool)
    shows[rows, cols] = True
    counts = np.zeros(shows.shape[1])
    free = np.ones(n, dtype=bool)
    # Tie-breaks folded into one sort key: adjusted score, then raw score, then position.
    order_rank = np.empty(n)
    order_rank[np.lexsort((np.arange(n)[::-1], s))] = np.arange(n)
    picked: list[int] = []
    for _ in range(k):
        penalty = np.where(shows, counts, np.inf).min(axis=1)
        adjusted = s / (1.0 + alpha * penalty)
        candidates = np.flatnonzero(free & (adjusted == adjusted[free].max()))
        best = int(candidates[np.argmax(order_rank[candidates])])
        picked.append(best)
        free[best] = False
        counts += shows[best]
    return [keys[i] for i in picked]
