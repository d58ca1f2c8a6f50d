"""Structural image check without decoding: same answers as PIL, refuses broken files, BadInput only."""

from __future__ import annotations

import io
import random
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from detkit.errors import BadInput
from detkit.imaging import ImageInfo, decode_image, inspect_image

LIMIT = 50_000_000
BOMB = f"decompression bomb: 20000x20000 = 400000000 pixels exceeds the limit of {LIMIT}"


def noise(w: int = 64, h: int = 48, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


PNG_SIG = b"\x89PNG\r\n\x1a\n"


def interlaced_png(w: int = 21, h: int = 13) -> bytes:
    """An Adam7-interlaced 8-bit grey PNG, built by hand (Pillow does not write interlaced PNGs)."""
    pixels = np.random.default_rng(1).integers(0, 256, (h, w), dtype=np.uint8)
    raw = b""
    for x0, y0, dx, dy in (
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ):
        sub = pixels[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 1)
    return (
        PNG_SIG + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    )


def exif_with_thumbnail() -> bytes:
    """An EXIF APP1 body whose IFD1 points at a complete embedded JPEG (its own SOI ... SOS ... EOI)."""
    thumb = save(noise(16, 12, seed=3), "JPEG")
    ifd0 = struct.pack(">HI", 0, 14)  # no entries, IFD1 at 14
    ifd1 = struct.pack(">H", 2)
    ifd1 += struct.pack(">HHII", 0x0201, 4, 1, 44) + struct.pack(">HHII", 0x0202, 4, 1, len(thumb))
    ifd1 += struct.pack(">I", 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd0 + ifd1
    assert len(tiff) == 44
    return b"Exif\x00\x00" + tiff + thumb


def os2_bmp(w: int = 7, h: int = 5) -> bytes:
    """A 24-bit BMP with the 12-byte OS/2 (BITMAPCOREHEADER) DIB header."""
    stride = (24 * w + 31) // 32 * 4
    pixels = bytes(range(256)) * (stride * h // 256 + 1)
    body = struct.pack("<IHHHH", 12, w, h, 1, 24) + pixels[: stride * h]
    return b"BM" + struct.pack("<IHHI", 14 + len(body), 0, 0, 26) + body


def top_down_bmp() -> bytes:
    data = bytearray(save(noise(30, 20), "BMP"))
    (h,) = struct.unpack_from("<i", data, 22)
    struct.pack_into("<i", data, 22, -h)
    return bytes(data)


def jpeg_with_dri(img: Image.Image) -> bytes:
    data = save(img, "JPEG", restart_marker_blocks=2)
    if b"\xff\xdd" not in data:
        pytest.skip("this Pillow does not write restart markers")
    return data


def png_with_text() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "a test")
    info.add_text("Comment", "compressed " * 20, zip=True)
    info.add_itxt("Author", "Zoë", lang="en", tkey="Author")
    return save(noise(33, 17), "PNG", pnginfo=info)


def sample(kind: str) -> bytes:
    rgb = noise()
    makers = {
        "jpeg-rgb": lambda: save(rgb, "JPEG"),
        "jpeg-l": lambda: save(rgb.convert("L"), "JPEG"),
        "jpeg-cmyk": lambda: save(rgb.convert("CMYK"), "JPEG"),
        "jpeg-progressive": lambda: save(rgb, "JPEG", progressive=True),
        "jpeg-restart": lambda: jpeg_with_dri(rgb),
        "jpeg-restart-rows": lambda: save(rgb, "JPEG", restart_marker_rows=1),
        "jpeg-exif-thumbnail": lambda: save(rgb, "JPEG", exif=exif_with_thumbnail()),
        "jpeg-subsampled-odd": lambda: save(noise(37, 23), "JPEG", subsampling=2),
        "png-1": lambda: save(rgb.convert("1"), "PNG"),
        "png-L": lambda: save(rgb.convert("L"), "PNG"),
        "png-LA": lambda: save(rgb.convert("LA"), "PNG"),
        "png-P": lambda: save(rgb.convert("P"), "PNG"),
        "png-RGB": lambda: save(rgb, "PNG"),
        "png-RGBA": lambda: save(rgb.convert("RGBA"), "PNG"),
        "png-I;16": lambda: save(
            Image.fromarray(np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 7), "PNG"
        ),
        "png-interlaced": interlaced_png,
        "png-text": png_with_text,
        "bmp-1": lambda: save(rgb.convert("1"), "BMP"),
        "bmp-L": lambda: save(rgb.convert("L"), "BMP"),
        "bmp-P": lambda: save(rgb.convert("P"), "BMP"),
        "bmp-RGB": lambda: save(rgb, "BMP"),
        "bmp-RGBA": lambda: save(rgb.convert("RGBA"), "BMP"),
        "bmp-top-down": top_down_bmp,
        "bmp-os2-core": os2_bmp,
    }
    return makers[kind]()


KINDS = [
    "jpeg-rgb", "jpeg-l", "jpeg-cmyk", "jpeg-progressive", "jpeg-restart", "jpeg-restart-rows",
    "jpeg-exif-thumbnail", "jpeg-subsampled-odd",
    "png-1", "png-L", "png-LA", "png-P", "png-RGB", "png-RGBA", "png-I;16", "png-interlaced", "png-text",
    "bmp-1", "bmp-L", "bmp-P", "bmp-RGB", "bmp-RGBA", "bmp-top-down", "bmp-os2-core",
]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_agrees_with_pil(kind):
    data = sample(kind)
    img = Image.open(io.BytesIO(data))
    img.load()  # the sample really decodes
    info = inspect_image(data, LIMIT)
    assert isinstance(info, ImageInfo)
    assert (info.format, info.width, info.height) == (img.format.lower(), *img.size)
    decoded = decode_image(data, LIMIT)
    assert (decoded.format, decoded.width, decoded.height) == (info.format, info.width, info.height)


def test_exif_thumbnail_really_is_embedded():
    data = sample("jpeg-exif-thumbnail")
    assert data.count(b"\xff\xd8") == 2 and data.count(b"\xff\xd9") >= 2 and data.count(b"\xff\xda") == 2
    assert Image.open(io.BytesIO(data)).getexif() is not None


def test_top_down_and_os2_headers_as_crafted():
    assert struct.unpack_from("<i", top_down_bmp(), 22)[0] == -20
    assert inspect_image(top_down_bmp(), LIMIT) == ImageInfo("bmp", 30, 20)
    assert inspect_image(os2_bmp(), LIMIT) == ImageInfo("bmp", 7, 5)


# -- truncation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["jpeg-rgb", "jpeg-progressive", "jpeg-restart-rows", "png-RGB", "png-P", "bmp-RGB", "bmp-P"]
)
def test_every_truncation_is_refused(kind):
    data = sample(kind)
    assert inspect_image(data, LIMIT).width == 64
    # every cut point: header, middle, the very last bytes (a few ms per file)
    for k in range(len(data)):
        with pytest.raises(BadInput) as exc:
            inspect_image(data[:k], LIMIT, where="f.img")
        assert exc.value.message.startswith("f.img: ")
        if k:
            assert "truncated" in exc.value.message, (k, exc.value.message)


def test_truncated_jpeg_names_the_missing_end():
    data = sample("jpeg-rgb")
    with pytest.raises(BadInput, match=r"^a\.jpg: truncated jpeg data \(no end-of-image marker\)$"):
        inspect_image(data[:-2], LIMIT, where="a.jpg")


# -- structural faults ----------------------------------------------------------------------------


def scan_start(data: bytes) -> int:
    sos = data.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")


def test_jpeg_trailing_bytes_after_eoi_are_accepted():
    data = sample("jpeg-rgb")
    for tail in (b"\x00" * 100, b"camera maker notes \xff\xd8\xff\xe1", bytes(range(256))):
        assert inspect_image(data + tail, LIMIT) == ImageInfo("jpeg", 64, 48)


@pytest.mark.parametrize("code", [0x01, 0x02, 0x4F, 0xBF, 0xC0, 0xC8, 0xD8, 0xDE, 0xF0])
def test_jpeg_bad_marker_inside_entropy_data_is_refused(code):
    data = bytearray(sample("jpeg-rgb"))
    mid = (scan_start(data) + len(data)) // 2
    data[mid : mid + 2] = bytes([0xFF, code])
    with pytest.raises(
        BadInput,
        match=rf"^x: broken jpeg data: unexpected marker 0xFF{code:02X} in entropy-coded data at byte {mid}$",
    ):
        inspect_image(bytes(data), LIMIT, where="x")


def test_jpeg_stuffed_bytes_and_restart_markers_are_not_markers():
    data = sample("jpeg-restart-rows")
    entropy = data[scan_start(data) : -2]
    assert re.search(rb"\xff[\xd0-\xd7]", entropy)  # restart markers present
    assert inspect_image(data, LIMIT).height == 48


def test_jpeg_12_bit_is_refused():
    data = bytearray(sample("jpeg-rgb"))
    sof = data.index(b"\xff\xc0")
    assert data[sof + 4] == 8
    data[sof + 4] = 12
    with pytest.raises(BadInput, match="unsupported 12-bit JPEG"):
        inspect_image(bytes(data), LIMIT)


@pytest.mark.parametrize(
    "patch, reason",
    [
        (lambda d, sof: d.__setitem__(slice(sof + 1, sof + 2), b"\xc5"), "unsupported hierarchical JPEG"),
        (lambda d, sof: d.__setitem__(sof + 9, 2), "unsupported JPEG with 2 components"),
        (lambda d, sof: d.__setitem__(slice(sof + 7, sof + 9), b"\x00\x00"), r"image has no pixels \(0x48\)"),
        (lambda d, sof: d.__setitem__(slice(sof + 5, sof + 7), b"\x00\x00"), r"image has no pixels \(64x0\)"),
        (lambda d, sof: d.__setitem__(sof + 11, 0x55), "bad component"),
    ],
)
def test_jpeg_bad_frame_headers_are_refused(patch, reason):
    data = bytearray(sample("jpeg-rgb"))
    patch(data, data.index(b"\xff\xc0"))
    with pytest.raises(BadInput, match=reason):
        inspect_image(bytes(data), LIMIT)


def test_jpeg_other_structural_faults():
    data = sample("jpeg-rgb")
    sof = data.index(b"\xff\xc0")
    sof_end = sof + 2 + int.from_bytes(data[sof + 2 : sof + 4], "big")
    sos = data.index(b"\xff\xda")
    cases = {
        "junk between segments": (data[:sof] + b"\x00\x00" + data[sof:], rf"expected a marker at byte {sof}"),
        "no frame header": (data[:sof] + data[sof_end:], "before any frame header"),
        "no scan": (data[:sos] + b"\xff\xd9", "end-of-image marker at byte .* before any scan"),
        "second frame": (data[:sof_end] + data[sof:], "second frame header"),
        "segment past the end": (data[:sof] + b"\xff\xe1\xff\xf0" + data[sof:], "truncated"),
        "short length": (data[:sof] + b"\xff\xfe\x00\x01" + data[sof:], "length below 2"),
    }
    for name, (broken, reason) in cases.items():
        with pytest.raises(BadInput, match=reason):
            inspect_image(broken, LIMIT)
        assert name


def test_jpeg_fill_bytes_before_markers_are_skipped():
    data = sample("jpeg-rgb")
    sof = data.index(b"\xff\xc0")
    assert inspect_image(data[:sof] + b"\xff\xff\xff" + data[sof:], LIMIT).width == 64


def test_png_flipped_idat_byte_fails_the_crc():
    data = bytearray(sample("png-RGB"))
    idat = data.index(b"IDAT") - 4
    data[idat + 8 + 100] ^= 0x40
    with pytest.raises(
        BadInput, match=rf"^p\.png: broken png data: CRC mismatch in chunk IDAT at byte {idat}$"
    ):
        inspect_image(bytes(data), LIMIT, where="p.png")


def test_png_chunk_order_and_trailing_bytes():
    data = sample("png-P")
    ihdr, rest = data[:33], data[33:]
    iend = png_chunk(b"IEND", b"")
    idat_at = rest.index(b"IDAT") - 4
    idat_len = int.from_bytes(rest[idat_at : idat_at + 4], "big")
    idat = rest[idat_at : idat_at + 12 + idat_len]
    before_idat = rest[:idat_at]
    assert inspect_image(data + b"trailing junk", LIMIT).format == "png"
    with pytest.raises(BadInput, match="no image data"):
        inspect_image(ihdr + before_idat + iend, LIMIT)
    with pytest.raises(BadInput, match="not consecutive"):
        inspect_image(ihdr + before_idat + idat + png_chunk(b"tEXt", b"a\x00b") + idat + iend, LIMIT)
    with pytest.raises(BadInput, match="second IHDR"):
        inspect_image(ihdr + data[8:33] + rest, LIMIT)
    with pytest.raises(BadInput, match="truncated"):
        inspect_image(ihdr + before_idat + idat, LIMIT)  # no IEND


@pytest.mark.parametrize("depth, colour", [(16, 3), (4, 2), (2, 6), (3, 0), (8, 5)])
def test_png_bad_depth_colour_combinations(depth, colour):
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, depth, colour, 0, 0, 0))
    data = PNG_SIG + ihdr + png_chunk(b"IDAT", zlib.compress(b"\x00" * 40)) + png_chunk(b"IEND", b"")
    with pytest.raises(BadInput, match=f"invalid bit depth {depth} for colour type {colour}"):
        inspect_image(data, LIMIT)


def test_bmp_header_faults():
    good = sample("bmp-RGB")

    def patched(offset: int, fmt: str, value: int) -> bytes:
        data = bytearray(good)
        struct.pack_into(fmt, data, offset, value)
        return bytes(data)

    cases = [
        (patched(14, "<I", 20), "unsupported DIB header size 20"),
        (patched(26, "<H", 2), "2 colour planes"),
        (patched(28, "<H", 7), "unsupported bit count 7"),
        (patched(30, "<I", 4), "unsupported compression 4"),
        (patched(30, "<I", 1), "RLE8 compression with 24 bits"),
        (patched(18, "<i", 0), r"image has no pixels \(0x48\)"),
        (patched(18, "<i", -64), r"image has no pixels \(-64x48\)"),
        (patched(10, "<I", 20), "points inside the headers"),
        (patched(10, "<I", 60), "truncated"),
    ]
    for data, reason in cases:
        with pytest.raises(BadInput, match=reason):
            inspect_image(data, LIMIT)


# -- pixel limit from the header alone ------------------------------------------------------------

JPEG_BOMB = (
    b"\xff\xd8\xff\xc0"
    + struct.pack(">HBHHB", 17, 8, 20000, 20000, 3)
    + bytes([1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1])
)
PNG_BOMB = PNG_SIG + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
BMP_BOMB = (
    b"BM"
    + struct.pack("<IHHI", 0, 0, 0, 54)
    + struct.pack("<IiiHHIIiiII", 40, 20000, 20000, 1, 24, 0, 0, 0, 0, 0, 0)
)
BMP_BOMB_TOP_DOWN = BMP_BOMB[:22] + struct.pack("<i", -20000) + BMP_BOMB[26:]
OS2_BOMB = b"BM" + struct.pack("<IHHI", 0, 0, 0, 26) + struct.pack("<IHHHH", 12, 20000, 20000, 1, 24)


@pytest.mark.parametrize(
    "data",
    [
        JPEG_BOMB,
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + JPEG_BOMB[2:],
        JPEG_BOMB[:11],  # cut right after the width
        PNG_BOMB,
        PNG_BOMB[:24],  # cut right after the height
        BMP_BOMB,
        BMP_BOMB[:26],
        BMP_BOMB_TOP_DOWN,
        OS2_BOMB,
    ],
    ids=[
        "jpeg",
        "jpeg-after-app0",
        "jpeg-cut",
        "png",
        "png-cut",
        "bmp",
        "bmp-cut",
        "bmp-top-down",
        "bmp-os2",
    ],
)
def test_decompression_bomb_from_the_header(data):
    with pytest.raises(BadInput) as exc:
        inspect_image(data, LIMIT, where="big.img")
    assert exc.value.message == f"big.img: {BOMB}"


def test_pixel_limit_matches_decode_image_wording():
    data = sample("png-RGB")
    with pytest.raises(
        BadInput, match=re.escape("decompression bomb: 64x48 = 3072 pixels exceeds the limit of 3000")
    ):
        inspect_image(data, 3000)
    assert inspect_image(data, 3072).width == 64


# -- not an image, garbage ------------------------------------------------------------------------


def test_other_content_is_refused():
    for data in (save(noise(), "GIF"), b"hello world", b"\x00" * 64):
        with pytest.raises(BadInput, match=r"^where: not a JPEG, PNG or BMP image"):
            inspect_image(data, LIMIT, where="where")
    with pytest.raises(BadInput, match="not a JPEG, PNG or BMP image"):
        inspect_image(b"", LIMIT)
    with pytest.raises(BadInput, match="truncated"):
        inspect_image(b"\x89PN", LIMIT)


def test_random_garbage_raises_bad_input_only():
    rng = random.Random(1234)
    magics = [
        b"",
        b"\xff\xd8\xff",
        b"\xff\xd8\xff\xc0",
        b"\xff\xd8\xff\xda",
        PNG_SIG,
        PNG_SIG + b"\x00\x00\x00\x0dIHDR",
        b"BM",
    ]
    for magic in magics:
        for _ in range(150):
            data = magic + rng.randbytes(rng.choice([0, 1, 2, 5, 12, 40, 200, 2000]))
            with pytest.raises(BadInput):
                inspect_image(data, LIMIT)


def test_mutated_files_raise_bad_input_or_pass():
    rng = random.Random(99)
    bases = [sample(k) for k in ("jpeg-rgb", "jpeg-progressive", "png-P", "bmp-P", "bmp-RGB")]
    for _ in range(600):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.choice([1, 2, 4])):
            i = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[i] = rng.randrange(256)
            else:
                del data[i : i + rng.randrange(1, 6)]
        try:
            info = inspect_image(bytes(data), LIMIT, where="m")
        except BadInput as exc:
            assert exc.message.startswith("m: ")
        else:
            assert info.width > 0 and info.height > 0
