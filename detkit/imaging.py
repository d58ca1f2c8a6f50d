"""Image files decided by content: magic bytes, a pixel limit read from the header, a verified decode.

Only JPEG, PNG and BMP are accepted. The file name's extension is never trusted: a PNG named
``.jpg`` is a PNG, a text file named ``.jpg`` is refused. The pixel limit is checked locally from
the header *before* any decoding (PIL's global ``Image.MAX_IMAGE_PIXELS`` only warns below twice its
value, and it is process-wide state we do not touch).

Two ways to verify a file:

* :func:`decode_image` / :func:`probe_image` decode every pixel with PIL (libjpeg, zlib): the
  strongest check, and the slow one (roughly 150 µs for a 6 KB JPEG).
* :func:`inspect_image` verifies the file's *structure* in pure Python without decoding a pixel
  (roughly 10 µs for a 6 KB JPEG; ``scripts/bench/inspect_image.py`` measures both): the magic
  bytes; the size read from the header (the size PIL reports), with the pixel limit checked before
  anything else is read; and then, per format,

  - JPEG: every marker segment is walked by its length (fill bytes skipped) from SOI to EOI; the
    frame header (SOF) must be 8-bit, 1, 3 or 4 components, non-zero size, sampling factors
    libjpeg handles (1-4, integral ratios), of a process libjpeg decodes (baseline, extended,
    progressive, lossless, arithmetic -- not hierarchical); quantisation and Huffman table
    segments must be well formed (Huffman code lengths that fit, as libjpeg checks); every scan
    (SOS) must follow the SOF, name its components and their defined quantisation and Huffman
    tables, and for progressive JPEGs carry valid progression parameters; the entropy-coded data
    of each scan is searched (one compiled regex) for the next marker that is not a stuffed
    ``FF00`` or a restart marker: it must be EOI or a segment allowed between scans (DHT, DQT,
    DRI, DAC, DNL, APPn, COM, SOS), anything else -- a reserved marker, a second SOF, SOI -- is
    refused; a file ending before EOI is "truncated". Bytes after EOI are allowed (cameras append
    data there); APP segments (an EXIF thumbnail with its own SOI/EOI) are skipped by their
    lengths. Junk bytes between segments are refused (libjpeg only warns of them).
  - PNG: the signature; every chunk's length, type and CRC (``zlib.crc32``), IDAT included; IHDR
    first (bit depth / colour type combination, compression, filter and interlace methods),
    PLTE's length, consecutive non-empty IDAT chunks, IEND last (bytes after it are allowed).
    IDAT is not decompressed.
  - BMP: file header and DIB header (sizes 12, 40, 52, 56, 64, 108, 124); one plane, bit count
    1/4/8/16/24/32, a compression PIL decodes (RGB, RLE8 at 8 bits, RLE4 at 4 bits, BITFIELDS
    with a mask layout PIL knows), the palette present, and the whole pixel array (row stride
    times height) present after the pixel-data offset; for RLE only the declared image size
    (or file size) is checked to be present, the RLE stream itself is not walked.

  What it does *not* verify is the pixel data itself: JPEG Huffman codes, PNG's zlib stream and
  filters, BMP pixel values and run lengths are never decoded. So a file that passes may still fail
  to decode, or decode to garbage: a JPEG (which has no checksum) whose entropy-coded bytes are
  corrupt in a way that forms no marker; a PNG written with a bad zlib stream under correct CRCs;
  a BMP with bad RLE runs. Use :func:`decode_image` where that matters.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from detkit.errors import BadInput
from detkit.image_inspect import ImageInfo, _check_size, inspect_image, sniff_format

#: formats we accept -> PIL's format name
FORMATS = {"jpeg": "JPEG", "png": "PNG", "bmp": "BMP"}
#: file extension written for each format (exports, temp files)
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "bmp": ".bmp"}

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
    _check_size(w, h, max_pixels, where)
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

__all__ = [
    "EXTENSIONS", "FORMATS", "DecodedImage", "ImageInfo", "decode_image", "inspect_image", "probe_image",
    "sniff_format",
]
