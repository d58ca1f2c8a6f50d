"""The structural faults the image inspectors raise (:mod:`detkit.image_inspect` and its JPEG part)
and the pixel-limit check they share; standard library only, like them."""

from __future__ import annotations

from detkit.errors import BadInput


def check_size(w: int, h: int, max_pixels: int, where: str) -> None:
    if w <= 0 or h <= 0:
        raise BadInput(f"{where}: image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise BadInput(
            f"{where}: decompression bomb: {w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}"
        )


class Broken(Exception):
    """A structural fault: the reason, completed into a :class:`BadInput` by :func:`inspect_image`."""


class Truncated(Broken):
    pass
