"""Structural verification of JPEG, PNG and BMP files without decoding a pixel (standard library only).

See :mod:`detkit.imaging` for what :func:`inspect_image` checks and what it does not. The JPEG part
is :mod:`detkit.image_inspect_jpeg`, the shared faults :mod:`detkit.image_faults`. These modules
import nothing outside the standard library (and :mod:`detkit.errors`), so that the import's worker
processes start in milliseconds; :mod:`detkit.imaging` re-exports the names.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from detkit.errors import BadInput
from detkit.image_faults import Broken as _Broken
from detkit.image_faults import Truncated as _Truncated
from detkit.image_faults import check_size as _check_size
from detkit.image_inspect_jpeg import inspect_jpeg as _inspect_jpeg

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


# ----------------------------------------------------------------------------------------------
# Structural verification without decoding (see the module docstring for what is checked)


@dataclass(frozen=True)
class ImageInfo:
    """Format and size of an image whose structure :func:`inspect_image` verified."""

    format: str  # "jpeg" | "png" | "bmp"
    width: int
    height: int


def inspect_image(data: bytes, max_pixels: int, where: str = "image") -> ImageInfo:
    """Verify the file's structure without decoding pixels; :class:`BadInput` naming ``where`` and the reason otherwise.

    Format and size come from the header (the same size PIL reports); the pixel limit is checked
    from the header before anything else is scanned. See the module docstring for what is and is
    not verified: a file that passes may still fail to decode if its compressed data is corrupt.
    """
    fmt = sniff_format(data[:16])
    if fmt is None:
        if not data:
            raise BadInput(f"{where}: empty file, not a JPEG, PNG or BMP image")
        if any(magic.startswith(data[:16]) for magic, _ in _MAGIC):
            raise BadInput(f"{where}: truncated image header ({len(data)} bytes)")
        raise BadInput(f"{where}: not a JPEG, PNG or BMP image (content starts with {data[:8]!r})")
    try:
        if fmt == "jpeg":
            w, h = _inspect_jpeg(data, max_pixels, where)
        elif fmt == "png":
            w, h = _inspect_png(data, max_pixels, where)
        else:
            w, h = _inspect_bmp(data, max_pixels, where)
    except _Truncated as exc:
        raise BadInput(f"{where}: truncated {fmt} data ({exc})") from None
    except _Broken as exc:
        raise BadInput(f"{where}: broken {fmt} data: {exc}") from None
    except (IndexError, struct.error) as exc:  # safety net: every read is bounds-checked above it
        raise BadInput(f"{where}: truncated or broken {fmt} data ({exc})") from None
    return ImageInfo(fmt, w, h)


# -- PNG ----------------------------------------------------------------------------------------

#: allowed bit depths per colour type
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_CHUNK = struct.Struct(">I4s")
_U32BE = struct.Struct(">I")


def _inspect_png(data: bytes, max_pixels: int, where: str) -> tuple[int, int]:
    n = len(data)
    if n < 33:  # signature + IHDR chunk
        if n >= 24 and data[12:16] == b"IHDR":
            w, h = struct.unpack_from(">II", data, 16)
            _check_size(w, h, max_pixels, where)
        raise _Truncated(f"{n} bytes, shorter than the signature and the IHDR chunk")
    length, ctype = _PNG_CHUNK.unpack_from(data, 8)
    if ctype != b"IHDR" or length != 13:
        raise _Broken(f"the first chunk (byte 8) must be a 13-byte IHDR, found {ctype!r} of {length} bytes")
    w, h, depth, colour, compression, filtering, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if w > 0x7FFFFFFF or h > 0x7FFFFFFF:
        raise _Broken(f"image size {w}x{h} out of range")
    _check_size(w, h, max_pixels, where)
    if zlib.crc32(data[12:29]) != _U32BE.unpack_from(data, 29)[0]:
        raise _Broken("CRC mismatch in chunk IHDR at byte 8")
    if depth not in _PNG_DEPTHS.get(colour, ()):
        raise _Broken(f"invalid bit depth {depth} for colour type {colour}")
    if compression or filtering or interlace > 1:
        raise _Broken(f"unknown compression/filter/interlace method {compression}/{filtering}/{interlace}")
    view = memoryview(data)
    crc32 = zlib.crc32
    pos = 33
    idat = 0  # 0: none yet, 1: in the run of IDAT chunks, 2: after it
    idat_bytes = 0
    while True:
        if pos + 8 > n:
            raise _Truncated(f"no IEND chunk (data ends at byte {n})")
        length, ctype = _PNG_CHUNK.unpack_from(data, pos)
        name = ctype.decode("latin-1")
        if not ctype.isalpha():
            raise _Broken(f"invalid chunk type {ctype!r} at byte {pos}")
        if length > 0x7FFFFFFF:
            raise _Broken(f"chunk {name} at byte {pos} has an invalid length {length}")
        end = pos + 12 + length
        if end > n:
            raise _Truncated(f"chunk {name} at byte {pos} runs past the end")
        if crc32(view[pos + 4 : end - 4]) != _U32BE.unpack_from(data, end - 4)[0]:
            raise _Broken(f"CRC mismatch in chunk {name} at byte {pos}")
        if ctype == b"IDAT":
            if idat == 2:
                raise _Broken(f"IDAT chunks are not consecutive (byte {pos})")
            idat = 1
            idat_bytes += length
        else:
            if idat == 1:
                idat = 2
            if ctype == b"IEND":
                if not idat_bytes:
                    raise _Broken(f"no image data before IEND at byte {pos}")
                if length:
                    raise _Broken(f"IEND chunk at byte {pos} is not empty")
                return w, h
            if ctype == b"IHDR":
                raise _Broken(f"second IHDR chunk at byte {pos}")
            if ctype == b"PLTE" and (length % 3 or not 3 <= length <= 768):
                raise _Broken(f"PLTE chunk at byte {pos} has an invalid length {length}")
        pos = end


# -- BMP ----------------------------------------------------------------------------------------

_BMP_HEADERS = (12, 40, 52, 56, 64, 108, 124)
_BMP_BITS = (1, 4, 8, 16, 24, 32)
#: BITFIELDS mask layouts PIL decodes, per bit count
_BMP_MASKS = {
    32: {
        (0xFF0000, 0xFF00, 0xFF, 0x0),
        (0xFF000000, 0xFF0000, 0xFF00, 0x0),
        (0xFF000000, 0xFF00, 0xFF, 0x0),
        (0xFF000000, 0xFF0000, 0xFF00, 0xFF),
        (0xFF, 0xFF00, 0xFF0000, 0xFF000000),
        (0xFF0000, 0xFF00, 0xFF, 0xFF000000),
        (0xFF000000, 0xFF00, 0xFF, 0xFF0000),
        (0x0, 0x0, 0x0, 0x0),
    },
    24: {(0xFF0000, 0xFF00, 0xFF, 0x0)},
    16: {(0xF800, 0x7E0, 0x1F, 0x0), (0x7C00, 0x3E0, 0x1F, 0x0)},
}


def _inspect_bmp(data: bytes, max_pixels: int, where: str) -> tuple[int, int]:
    n = len(data)
    if n < 18:
        raise _Truncated(f"{n} bytes, shorter than the file header")
    file_size, offset, hsize = struct.unpack_from("<I4xII", data, 2)
    if hsize not in _BMP_HEADERS:
        raise _Broken(f"unsupported DIB header size {hsize} at byte 14")
    if hsize == 12:  # OS/2 / BITMAPCOREHEADER: unsigned 16-bit size, bottom-up
        if n >= 22:
            _check_size(*struct.unpack_from("<HH", data, 18), max_pixels, where)
        if n < 26:
            raise _Truncated(f"{n} bytes, shorter than the 12-byte DIB header")
        w, h, planes, bits = struct.unpack_from("<HHHH", data, 18)
        compression = colours = sizeimage = 0
        entry = 3  # palette entries are BGR triples
    else:
        if n >= 26:
            w, h = struct.unpack_from("<ii", data, 18)
            if h < 0:  # top-down; PIL only reads it so when the high byte is 0xFF
                h = -h if h >= -(1 << 24) else h + (1 << 32)
            _check_size(w, h, max_pixels, where)
        if n < 14 + hsize:
            raise _Truncated(f"{n} bytes, shorter than the {hsize}-byte DIB header")
        _, _, planes, bits, compression, sizeimage, _, _, colours = struct.unpack_from("<iiHHIIiiI", data, 18)
        entry = 4
    if planes != 1:
        raise _Broken(f"{planes} colour planes (must be 1)")
    if bits not in _BMP_BITS:
        raise _Broken(f"unsupported bit count {bits}")
    header_end = 14 + hsize
    if compression == 3:  # BITFIELDS; a 40-byte header is followed by three masks
        if bits not in _BMP_MASKS:
            raise _Broken(f"BITFIELDS compression with {bits} bits per pixel")
        if hsize == 40:
            header_end += 12
            if n < header_end:
                raise _Truncated("colour masks missing after the DIB header")
        masks = struct.unpack_from("<III", data, 54)
        masks += struct.unpack_from("<I", data, 66) if hsize >= 56 and bits == 32 else (0,)
        if masks not in _BMP_MASKS[bits]:
            raise _Broken(f"unsupported BITFIELDS masks {tuple(hex(m) for m in masks)}")
    elif compression == 1 or compression == 2:  # RLE8, RLE4
        if bits != (8 if compression == 1 else 4):
            raise _Broken(f"RLE{8 if compression == 1 else 4} compression with {bits} bits per pixel")
    elif compression:
        raise _Broken(f"unsupported compression {compression}")
    if bits <= 8:  # the palette follows the header
        if not colours:
            colours = 1 << bits
        if colours > 256:
            raise _Broken(f"palette of {colours} colours (at most 256)")
        if offset == header_end:  # PIL reads the palette there and the pixels after it
            offset += entry * colours
        if n < header_end + entry * colours:
            raise _Truncated(f"the palette of {colours} colours at byte {header_end} runs past the end")
    if offset < header_end:
        raise _Broken(f"pixel data offset {offset} points inside the headers")
    if compression == 1 or compression == 2:
        need = sizeimage if sizeimage else (file_size - offset if file_size > offset else 2)
        if offset + max(need, 2) > n:
            raise _Truncated(f"the RLE data of {need} bytes at byte {offset} runs past the end")
    else:
        need = ((bits * w + 31) // 32) * 4 * h
        if offset + need > n:
            raise _Truncated(
                f"the pixel array of {need} bytes at byte {offset} runs past the end ({n} bytes)"
            )
    return w, h
