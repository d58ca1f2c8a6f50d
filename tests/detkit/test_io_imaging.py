"""Images decided by content: magic bytes, local pixel limit, verified decode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from detkit.errors import BadInput
from detkit.imaging import decode_image, probe_image, sniff_format


def encoded(fmt: str, w: int = 40, h: int = 30) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt, name", [("JPEG", "jpeg"), ("PNG", "png"), ("BMP", "bmp")])
def test_formats_are_sniffed_and_probed(fmt, name):
    data = encoded(fmt)
    assert sniff_format(data[:16]) == name
    assert probe_image(data, 10_000) == (name, 40, 30)


def test_other_content_is_refused():
    assert sniff_format(b"GIF89a") is None
    with pytest.raises(BadInput, match="not a JPEG, PNG or BMP"):
        probe_image(encoded("GIF"), 10_000)


def test_local_pixel_limit():
    with pytest.raises(BadInput, match="decompression bomb: 40x30 = 1200 pixels exceeds the limit of 1000"):
        probe_image(encoded("PNG"), 1000)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncation_is_detected(fmt):
    data = encoded(fmt, 200, 150)
    with pytest.raises(BadInput, match="truncated"):
        probe_image(data[: len(data) * 2 // 3], 10**8)


def test_large_jpeg_gets_a_small_grey_copy():
    info = decode_image(encoded("JPEG", 1600, 1200), 10**8, thumb=256)
    assert (info.width, info.height) == (1600, 1200)
    assert info.grey.ndim == 2 and max(info.grey.shape) <= 512
