"""CALD-style consistency (Yu et al., "Consistency-based Active Learning for Object Detection",
CVPR 2022 workshops): a detector that is sure of an object finds it again, in the same place and
with the same score, when the image is flipped, shrunk or partly hidden.

The detector runs on ``V`` augmented views of each image (by default three: horizontal ``flip``,
``resize`` to 0.8x on the same canvas, ``cutout`` of two grey squares); the views' boxes are mapped
back to the original frame. Every box ``b`` with score ``s`` on one side (the original or a view)
is matched to the box of the same class on the other side with the highest IoU ``u`` (score
``t``; ``u = t = 0`` when there is none)::

    consistency  c(b) = u * (1 - |s - t|)                  (1: found again exactly)
    weighted     c'(b) = 1 - s * (1 - c(b))                (a faint box that vanishes matters little)
    image score  = 1 - min over views and boxes of c'(b)   (= max_b s * (1 - c(b)))

Matching both ways counts boxes that vanish in a view and boxes that appear only in a view.
``weighted=False`` gives the paper's plain ``1 - min c(b)``. Identical views score 0; an image with
no box anywhere scores 0. Cost: ``V`` extra inferences per image (3 by default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from detkit.boxes import iou_matrix
from detkit.scoring.base import Dets, ScoringInputError, as_dets, key_uniform

VIEWS = ("flip", "resize", "cutout")
Detect = Callable[[np.ndarray], Sequence[Dets]]


def _side(sa: np.ndarray, iou: np.ndarray, sb: np.ndarray, weighted: bool) -> np.ndarray:
    """Per box of side A: ``1 - c'`` against side B (``iou`` is A x B, same class only)."""
    if iou.shape[1] == 0:
        c = np.zeros(len(sa))
    else:
        j = iou.argmax(axis=1)
        c = iou[np.arange(len(sa)), j] * (1.0 - np.abs(sa - sb[j]))
    return sa * (1.0 - c) if weighted else 1.0 - c


def view_inconsistency(orig: Dets, view: Dets, weighted: bool = True) -> float:
    """``1 - min c'`` of one image against one view (see the module docstring)."""
    (bo, so, co), (bv, sv, cv) = as_dets(orig, "cald: original"), as_dets(view, "cald: view")
    if len(so) + len(sv) == 0:
        return 0.0
    iou = iou_matrix(bo, bv) * (co[:, None] == cv[None, :])
    worst = np.concatenate([_side(so, iou, sv, weighted), _side(sv, iou.T, so, weighted)])
    return float(np.clip(worst.max(), 0.0, 1.0))


def cald(dets: Sequence[Dets], views: Sequence[Sequence[Dets]], weighted: bool = True) -> np.ndarray:
    """CALD image scores ``(N,)``: ``dets[i]`` the original detections, ``views[v][i]`` view ``v``'s, mapped back."""
    n = len(dets)
    if not views:
        raise ScoringInputError("cald: needs the detections of at least one augmented view")
    for v, per_image in enumerate(views):
        if len(per_image) != n:
            raise ScoringInputError(f"cald: view {v} has detections for {len(per_image)} images, expected {n}")
    out = np.zeros(n)
    for i in range(n):  # per image; boxes inside are vectorised
        out[i] = max(view_inconsistency(dets[i], per_image[i], weighted) for per_image in views)
    return out


def _images(images: np.ndarray) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ScoringInputError(f"cald: images must be a (N, H, W, 3) batch, got shape {arr.shape}")
    return arr


def flip_view(images: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Mirror left-right; boxes map back with ``x -> W - x``."""
    w = images.shape[2]
    return images[:, :, ::-1], lambda b: np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1)


def resize_view(images: np.ndarray, scale: float = 0.8, pad_value: int = 114
                ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Shrink by ``scale`` (nearest neighbour) into the top-left of a same-size canvas; boxes map back ``/ scale``."""
    if not 0.0 < scale < 1.0:
        raise ScoringInputError(f"cald: resize scale must be in (0, 1), got {scale!r}")
    n, h, w = images.shape[:3]
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    rows = np.minimum(((np.arange(nh) + 0.5) / scale).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(nw) + 0.5) / scale).astype(np.int64), w - 1)
    out = np.full_like(images, pad_value)
    out[:, :nh, :nw] = images[:, rows][:, :, cols]
    return out, lambda b: b / scale


def cutout_view(images: np.ndarray, keys: Sequence[str] | None = None, seed: int = 0, patches: int = 2,
                size: float = 0.15, pad_value: int = 114) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Grey out ``patches`` squares of side ``size * min(H, W)``, placed by ``(seed, key)``; boxes unchanged."""
    n, h, w = images.shape[:3]
    keys = [str(i) for i in range(n)] if keys is None else [str(k) for k in keys]
    if len(keys) != n:
        raise ScoringInputError(f"cald: {len(keys)} keys for {n} images")
    side = max(1, round(size * min(h, w)))
    u = np.stack([key_uniform(keys, seed * 1000 + j) for j in range(2 * patches)], axis=1)  # (N, 2P)
    y0 = (u[:, :patches] * (h - side + 1)).astype(np.int64)
    x0 = (u[:, patches:] * (w - side + 1)).astype(np.int64)
    ys, xs = np.arange(h), np.arange(w)
    in_y = (ys[None, None, :] >= y0[..., None]) & (ys[None, None, :] < y0[..., None] + side)  # (N, P, H)
    in_x = (xs[None, None, :] >= x0[..., None]) & (xs[None, None, :] < x0[..., None] + side)  # (N, P, W)
    mask = (in_y[..., :, None] & in_x[..., None, :]).any(axis=1)  # (N, H, W)
    out = images.copy()
    out[mask] = pad_value
    return out, lambda b: b


def make_views(images: np.ndarray, names: Sequence[str] = VIEWS, keys: Sequence[str] | None = None,
               seed: int = 0, scale: float = 0.8) -> list[tuple[str, np.ndarray, Callable[[np.ndarray], np.ndarray]]]:
    """``(name, view images, box map back)`` for each view name, in order."""
    arr = _images(images)
    unknown = [v for v in names if v not in VIEWS]
    if unknown or not names:
        raise ScoringInputError(f"cald: unknown views {unknown or list(names)}; choose from {', '.join(VIEWS)}")
    makers = {"flip": lambda: flip_view(arr), "resize": lambda: resize_view(arr, scale),
              "cutout": lambda: cutout_view(arr, keys, seed)}
    return [(v, *makers[v]()) for v in names]


def view_detections(images: np.ndarray, detect: Detect, names: Sequence[str] = VIEWS,
                    keys: Sequence[str] | None = None, seed: int = 0, scale: float = 0.8) -> list[list[Dets]]:
    """Run ``detect`` (images in, one ``(boxes, scores, classes)`` per image out, boxes in the input
    frame) on each view; return ``[view][image]`` detections mapped back to the original frame."""
    out = []
    for name, view, back in make_views(images, names, keys, seed, scale):
        found = list(detect(np.ascontiguousarray(view)))
        if len(found) != len(view):
            raise ScoringInputError(f"cald: detect returned {len(found)} results for {len(view)} {name} images")
        mapped = []
        for d in found:
            b, s, c = as_dets(d, f"cald: detect on the {name} view")
            mapped.append((back(b), s, c))
        out.append(mapped)
    return out
