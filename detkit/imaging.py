"""Image files decided by content: magic bytes, a pixel limit read from the header, a verified decode.

Only JPEG, PNG and BMP are accepted. The file name's extension is never trusted: a PNG named
``.jpg`` is a PNG, a text file named ``.jpg`` is refused. The pixel limit is checked locally from
the header *before* any decoding (PIL's global ``Image.MAX_IMAGE_PIXELS`` only warns below twice its
value, and it is process-wide state we do not touch).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from detkit.errors import BadInput

#: formats we accept -> PIL's format name
FORMATS = {"jpeg": "JPEG", "png": "PNG", "bmp": "BMP"}
#: file extension written for each format (exports, temp files)
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "bmp": ".bmp"}

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
)


def sniff_format(head: bytes) -> str | None:
    """The format (``"jpeg"``, ``"png"``, ``"bmp"``) named by the first bytes of a file, else None."""
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


@dataclass
class DecodedImage:
    """What import needs from one verified image: format, original size, a small grey copy."""

    format: str
    width: int
    height: int
    grey: np.ndarray  # uint8, longest side <= the requested thumbnail side (about)


def _open(data: bytes, where: str) -> tuple[str, Image.Image]:
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise BadInput(f"{where}: not a JPEG, PNG or BMP image (content starts with {data[:8]!r})")
    try:
        img = Image.open(io.BytesIO(data), formats=[FORMATS[fmt]])
    except Image.DecompressionBombError as exc:
        raise BadInput(f"{where}: decompression bomb ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for broken headers
        raise BadInput(f"{where}: unreadable or truncated {fmt} header ({exc})") from None
    return fmt, img


def _check_pixels(img: Image.Image, max_pixels: int, where: str) -> tuple[int, int]:
    w, h = img.size
    if w <= 0 or h <= 0:
        raise BadInput(f"{where}: image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise BadInput(f"{where}: decompression bomb: {w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}")
    return w, h


def decode_image(data: bytes, max_pixels: int, thumb: int = 256, where: str = "image") -> DecodedImage:
    """Verify ``data`` by decoding it fully and return its size plus a grey copy of side <= ~``thumb``.

    JPEGs are decoded with libjpeg's DCT scaling straight to grey (``draft``): the whole entropy
    stream is still read, so truncation is still detected, at a fraction of a full decode's cost.
    Raises :class:`BadInput` naming ``where`` and the reason (not an image, pixel limit, truncated).
    """
    fmt, img = _open(data, where)
    w, h = _check_pixels(img, max_pixels, where)
    try:
        if fmt == "jpeg":
            img.draft("L", (thumb, thumb))
        img.load()
        grey = img if img.mode == "L" else img.convert("L")
    except Image.DecompressionBombError as exc:
        raise BadInput(f"{where}: decompression bomb ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt streams raise OSError, SyntaxError, ...
        raise BadInput(f"{where}: broken or truncated {fmt} data ({exc})") from None
    side = max(grey.size)
    if side > 2 * thumb:
        grey = grey.reduce(side // thumb)
    return DecodedImage(fmt, w, h, np.asarray(grey))


def probe_image(data: bytes, max_pixels: int, where: str = "image") -> tuple[str, int, int]:
    """``(format, width, height)`` of a verified JPEG/PNG/BMP; :class:`BadInput` with the reason otherwise."""
    info = decode_image(data, max_pixels, where=where)
    return info.format, info.width, info.height
