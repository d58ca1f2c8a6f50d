"""ALDD on class heatmaps (Kao et al., "Localization-Aware Active Learning for Object Detection",
ACCV 2018; YMIR's default mining score, there "Active Learning for Deep Detection").

A CenterNet-style detector outputs per class ``c`` and cell ``x`` a probability ``p_c(x)`` (after
sigmoid) that an object centre of class ``c`` lies there. Neighbouring cells look at almost the
same image content, so a window ``W(x)`` around ``x`` acts like an ensemble of predictions of the
same thing. Their disagreement is the mutual information of that ensemble::

    H(q)       = -q log2 q - (1 - q) log2 (1 - q)                 (binary entropy, in bits)
    MI_c(x)    = H( mean_{y in W(x)} p_c(y) )  -  mean_{y in W(x)} H( p_c(y) )
    u(x)       = sum_c MI_c(x)                                    (>= 0 by concavity of H)

A flat heatmap (everywhere 0, everywhere 1, or everywhere 0.3) scores 0: the window agrees with
itself, however unsure. Cells that flip between "object" and "background" score up to 1 bit per
class. The image score reduces ``u`` over locations:

* ``grid`` (YMIR's): the maximum of ``u`` in each ``cell x cell`` block, averaged over blocks —
  images with many disputed regions rank above images with one;
* ``max``: ``max_x u(x)``;
* ``topk``: the mean of the ``k`` largest ``u(x)``.

Windows are averaged with ``count_include_pad=False`` (edge windows average the cells they hold),
computed with shifted sums over the whole batch ``(N, C, H, W)`` at once: no extra inference,
``O(N C H W window)``.
"""

from __future__ import annotations

import numpy as np

from detkit.scoring.base import EPS, ScoringInputError

ALDD_REDUCE = ("grid", "max", "topk")


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """``-p log2 p - (1-p) log2 (1-p)`` elementwise, 0 at 0 and 1."""
    eps = EPS if np.asarray(p).dtype != np.float32 else 1e-7  # 1 - 1e-12 is 1.0 in float32
    q = np.clip(p, eps, 1.0 - eps)
    return -(q * np.log2(q) + (1.0 - q) * np.log2(1.0 - q))


def _window_sum(x: np.ndarray, r: int) -> np.ndarray:
    """Sum over ``(2r+1)^2`` windows of the last two axes, zero-padded: shifted slices, exact on zeros."""
    h, w = x.shape[-2:]
    p = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)])
    rows = sum(p[..., i:i + h, :] for i in range(2 * r + 1))
    return sum(rows[..., j:j + w] for j in range(2 * r + 1))


def window_mean(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size x size`` window centred on each cell of the last two axes (edges: only inside cells)."""
    r = size // 2
    x = np.asarray(x)
    x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
    counts = _window_sum(np.ones(x.shape[-2:], dtype=x.dtype), r)
    return _window_sum(x, r) / counts


def _heatmap(heatmap: np.ndarray) -> np.ndarray:
    # float32 stays float32 (a model's own output: half the memory traffic of float64, and this runs
    # once per mined batch); anything else is read as float64
    hm = np.asarray(heatmap)
    hm = hm if hm.dtype == np.float32 else hm.astype(np.float64)
    if hm.ndim != 4:
        raise ScoringInputError(f"aldd: heatmap must have shape (N, C, H, W), got {hm.shape}")
    if hm.size and (np.nanmin(hm) < 0.0 or np.nanmax(hm) > 1.0 or np.isnan(hm).any()):
        raise ScoringInputError("aldd: heatmap must hold probabilities in [0, 1] (sigmoid applied)")
    return hm


def aldd_map(heatmap: np.ndarray, window: int = 3) -> np.ndarray:
    """``u(x)`` of the module docstring for each image: (N, H, W) from (N, C, H, W)."""
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1 or window % 2 == 0:
        raise ScoringInputError(f"aldd: window must be an odd integer >= 1, got {window!r}")
    hm = _heatmap(heatmap)
    mi = binary_entropy(window_mean(hm, window)) - window_mean(binary_entropy(hm), window)
    tiny = 1e-12 if mi.dtype == np.float64 else 1e-6
    mi[mi < tiny] = 0.0  # rounding noise of agreeing windows (MI >= 0 exactly)
    return mi.sum(axis=1)


def aldd(heatmap: np.ndarray, window: int = 3, reduce: str = "grid", cell: int = 8, k: int = 10) -> np.ndarray:
    """ALDD image scores ``(N,)`` of a heatmap batch ``(N, C, H, W)`` (see the module docstring)."""
    if reduce not in ALDD_REDUCE:
        raise ScoringInputError(f"aldd: reduce must be one of {', '.join(ALDD_REDUCE)}, got {reduce!r}")
    u = aldd_map(heatmap, window)
    n, h, w = u.shape
    if n == 0 or h * w == 0:
        return np.zeros(n)
    if reduce == "max":
        return u.reshape(n, -1).max(axis=1)
    if reduce == "topk":
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ScoringInputError(f"aldd: k must be an integer >= 1, got {k!r}")
        kk = min(int(k), h * w)
        return -np.partition(-u.reshape(n, -1), kk - 1, axis=1)[:, :kk].mean(axis=1)
    if isinstance(cell, bool) or not isinstance(cell, int | np.integer) or cell < 1:
        raise ScoringInputError(f"aldd: cell must be an integer >= 1, got {cell!r}")
    gh, gw = -(-h // cell), -(-w // cell)
    padded = np.full((n, gh * cell, gw * cell), -np.inf)
    padded[:, :h, :w] = u
    return padded.reshape(n, gh, cell, gw, cell).max(axis=(2, 4)).mean(axis=(1, 2))
