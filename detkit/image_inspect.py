"""Structural verification of JPEG, PNG and BMP files without decoding a pixel (standard library only).

See :mod:`detkit.imaging` for what :func:`inspect_image` checks and what it does not. This module
imports nothing outside the standard library (and :mod:`detkit.errors`), so that the import's
worker processes start in milliseconds; :mod:`detkit.imaging` re-exports its names.
"""

from __future__ import annotations

import functools
import operator
import re
import struct
import zlib
from dataclasses import dataclass

from detkit.errors import BadInput

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


def _check_size(w: int, h: int, max_pixels: int, where: str) -> None:
    if w <= 0 or h <= 0:
        raise BadInput(f"{where}: image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise BadInput(
            f"{where}: decompression bomb: {w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}"
        )


# ----------------------------------------------------------------------------------------------
# Structural verification without decoding (see the module docstring for what is checked)


@dataclass(frozen=True)
class ImageInfo:
    """Format and size of an image whose structure :func:`inspect_image` verified."""

    format: str  # "jpeg" | "png" | "bmp"
    width: int
    height: int


class _Broken(Exception):
    """A structural fault: the reason, completed into a :class:`BadInput` by :func:`inspect_image`."""


class _Truncated(_Broken):
    pass


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


# -- JPEG ---------------------------------------------------------------------------------------

#: frame headers of the processes libjpeg(-turbo) decodes: baseline, extended, progressive,
#: lossless; the same three with arithmetic coding
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCA, 0xCB})
#: hierarchical (differential) frames: PIL reads their size, libjpeg refuses to decode them
_SOF_HIERARCHICAL = frozenset({0xC5, 0xC6, 0xC7, 0xCD, 0xCE, 0xCF})
#: segments skipped by their length: APPn, COM, DAC, DNL
_JPEG_SKIP = frozenset({*range(0xE0, 0xF0), 0xFE, 0xCC, 0xDC})
#: what may end the entropy-coded data of a scan: EOI, or a segment allowed between scans
_AFTER_SCAN = frozenset({0xD9, 0xDA, 0xC4, 0xDB, 0xDD} | _JPEG_SKIP)
#: the next marker in entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart marker
#: (RST0-7) or another 0xFF (fill); the match starts at the marker's last 0xFF
_ENTROPY_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_FILL = re.compile(rb"\xff+")
#: weight of a Huffman code of each length 1..16 in the Kraft sum, scaled to 2**16
_KRAFT = tuple(1 << (15 - i) for i in range(16))
#: Huffman tables libjpeg-turbo supplies when a file does not define them (Motion JPEG): DC 0-1,
#: AC 0-1, as bits of the mask _dht_tables returns (bit 4 * class + table id)
_STANDARD_HUFFMAN = 0x33


class _SegmentFault(Exception):
    """A fault inside one segment, at ``offset`` from the segment's marker (cached checks)."""

    def __init__(self, offset: int, reason: str):
        super().__init__(reason)
        self.offset, self.reason = offset, reason


@functools.lru_cache(maxsize=64)  # encoders reuse their tables: most files repeat a known segment
def _dht_tables(segment: bytes, max_dc_symbol: int) -> int:
    """Check a DHT segment (marker included) as libjpeg does; the mask of the tables it defines."""
    mask, p, end = 0, 4, len(segment)
    while p < end:
        tc_th = segment[p]
        if tc_th & 0xEC:  # class 0/1, table 0-3
            raise _SegmentFault(p, f"bad Huffman table class/id 0x{tc_th:02x}")
        counts = segment[p + 1 : p + 17]
        count = sum(counts)
        if count > 256 or p + 17 + count > end:
            raise _SegmentFault(p, f"Huffman table of {count} codes larger than its segment")
        if sum(map(operator.mul, counts, _KRAFT)) >= 1 << 16:  # libjpeg: "Bogus Huffman table"
            raise _SegmentFault(p, "Huffman table with more codes than its code lengths allow")
        if not tc_th & 0x10 and count and max(segment[p + 17 : p + 17 + count]) > max_dc_symbol:
            raise _SegmentFault(p, f"DC Huffman table with a symbol above {max_dc_symbol}")
        mask |= 1 << ((tc_th >> 4) * 4 + (tc_th & 3))
        p += 17 + count
    if p != end:
        raise _SegmentFault(0, "Huffman table segment with a bad length")
    return mask


@functools.lru_cache(maxsize=64)
def _frame_components(spec: bytes) -> dict[int, tuple[int, int]]:
    """Check the component list of a SOF as libjpeg does; component id -> (quant table, blocks per MCU)."""
    components: dict[int, tuple[int, int]] = {}
    max_h, max_v = max(b >> 4 for b in spec[1::3]), max(b & 15 for b in spec[1::3])
    for i in range(0, len(spec), 3):
        h, v, tq = spec[i + 1] >> 4, spec[i + 1] & 15, spec[i + 2]
        if not (1 <= h <= 4 and 1 <= v <= 4) or tq > 3:
            raise _SegmentFault(
                10 + i, f"bad component (sampling 0x{spec[i + 1]:02x}, quantisation table {tq})"
            )
        if max_h % h or max_v % v:  # libjpeg: "Fractional sampling not implemented yet"
            raise _SegmentFault(10 + i, f"unsupported fractional sampling {h}x{v} of {max_h}x{max_v}")
        components[spec[i]] = (tq, h * v)
    if len(components) * 3 != len(spec):
        raise _SegmentFault(10, "duplicate component id")
    return components


def _inspect_jpeg(data: bytes, max_pixels: int, where: str) -> tuple[int, int]:
    n = len(data)
    pos = 2  # after SOI; sniff_format saw 0xFF at byte 2
    size: tuple[int, int] | None = None
    frame = 0  # the SOF marker's code
    components: dict[int, tuple[int, int]] = {}
    qtables = 0  # bit i: quantisation table i defined
    huffman = _STANDARD_HUFFMAN
    scans = 0
    while True:
        if pos + 1 >= n:
            raise _Truncated("no end-of-image marker")
        if data[pos] != 0xFF:
            raise _Broken(f"expected a marker at byte {pos}, found 0x{data[pos]:02x}")
        code = data[pos + 1]
        if code == 0xFF:  # fill bytes before the marker
            pos = _FILL.match(data, pos).end() - 1
            if pos + 1 >= n:
                raise _Truncated("no end-of-image marker")
            code = data[pos + 1]
        if code == 0xD9:  # EOI
            if size is None or not scans:
                raise _Broken(f"end-of-image marker at byte {pos} before any scan")
            return size
        if 0xD0 <= code <= 0xD7 or code == 0x01:  # RSTn, TEM: no length
            pos += 2
            continue
        if pos + 4 > n:
            raise _Truncated(f"marker 0xFF{code:02X} at byte {pos} has no length")
        end = pos + 2 + ((data[pos + 2] << 8) | data[pos + 3])
        if end < pos + 4:
            raise _Broken(f"marker 0xFF{code:02X} at byte {pos} has a length below 2")
        if end > n:
            if (code in _SOF or code in _SOF_HIERARCHICAL) and pos + 9 <= n:
                # the size is there: the pixel limit comes first, even for a cut header
                _check_size(
                    (data[pos + 7] << 8) | data[pos + 8],
                    (data[pos + 5] << 8) | data[pos + 6],
                    max_pixels,
                    where,
                )
            raise _Truncated(f"segment 0xFF{code:02X} at byte {pos} runs past the end")
        if code in _JPEG_SKIP:
            pass
        elif code == 0xC4:  # DHT: one or more tables of 16 counts and their symbols
            try:
                huffman |= _dht_tables(data[pos:end], 16 if size is None or frame in (0xC3, 0xCB) else 15)
            except _SegmentFault as exc:
                raise _Broken(f"{exc.reason} at byte {pos + exc.offset}") from None
        elif code == 0xDB:  # DQT: one or more tables of 64 8-bit or 16-bit entries
            p = pos + 4
            while p < end:
                pq_tq = data[p]
                if pq_tq > 0x13 or pq_tq & 0x0C:  # precision 0/1, table 0-3
                    raise _Broken(f"bad quantisation table 0x{pq_tq:02x} at byte {p}")
                p += 65 + 64 * (pq_tq >> 4)
                qtables |= 1 << (pq_tq & 3)
            if p != end:
                raise _Broken(f"quantisation table segment at byte {pos} has a bad length")
        elif code in _SOF:
            if size is not None:
                raise _Broken(f"second frame header at byte {pos}")
            if end - pos < 10:
                raise _Broken(f"frame header at byte {pos} is too short")
            precision, nc = data[pos + 4], data[pos + 9]
            h, w = (data[pos + 5] << 8) | data[pos + 6], (data[pos + 7] << 8) | data[pos + 8]
            _check_size(w, h, max_pixels, where)
            if precision != 8:
                raise _Broken(f"unsupported {precision}-bit JPEG (only 8-bit samples can be decoded)")
            if nc not in (1, 3, 4):
                raise _Broken(f"unsupported JPEG with {nc} components (frame header at byte {pos})")
            if end - pos != 10 + 3 * nc:
                raise _Broken(f"frame header at byte {pos} has a bad length")
            try:
                components = _frame_components(data[pos + 10 : end])
            except _SegmentFault as exc:
                raise _Broken(f"{exc.reason} at byte {pos + exc.offset}") from None
            size, frame = (w, h), code
        elif code == 0xDA:  # SOS, then the entropy-coded data up to the next marker
            _check_scan(data, pos, end, frame, components, qtables, huffman)
            scans += 1
            m = _ENTROPY_MARKER.search(data, end)
            if m is None:
                raise _Truncated("no end-of-image marker")
            pos = m.start()
            if data[pos + 1] not in _AFTER_SCAN:
                raise _Broken(
                    f"unexpected marker 0xFF{data[pos + 1]:02X} in entropy-coded data at byte {pos}"
                )
            continue
        elif code == 0xDD:  # DRI
            if end - pos != 6:
                raise _Broken(f"restart interval segment at byte {pos} has a bad length")
        elif code in _SOF_HIERARCHICAL:
            raise _Broken(f"unsupported hierarchical JPEG (frame header 0xFF{code:02X} at byte {pos})")
        elif code == 0xD8:
            raise _Broken(f"second start-of-image marker at byte {pos}")
        else:
            raise _Broken(f"unknown or reserved marker 0xFF{code:02X} at byte {pos}")
        pos = end


def _check_scan(
    data: bytes,
    pos: int,
    end: int,
    frame: int,
    components: dict[int, tuple[int, int]],
    qtables: int,
    huffman: int,
) -> None:
    """A scan header (SOS at ``pos``) checked as libjpeg does before decoding the scan."""
    if not frame:
        raise _Broken(f"scan at byte {pos} before any frame header")
    ns = data[pos + 4] if end - pos > 4 else 0
    if not 1 <= ns <= 4 or end - pos != 8 + 2 * ns:
        raise _Broken(f"scan header at byte {pos} has a bad length or component count")
    ss, se, ah_al = data[end - 3], data[end - 2], data[end - 1]
    ah, al = ah_al >> 4, ah_al & 15
    if frame in (0xC2, 0xCA):  # progressive: libjpeg refuses a bad progression
        if (se != 0 if ss == 0 else not ss <= se <= 63 or ns != 1) or al > 13 or (ah and al != ah - 1):
            raise _Broken(f"bad progressive scan parameters {ss}/{se}/0x{ah_al:02x} at byte {pos}")
    # which Huffman tables the scan decodes with (arithmetic coding has none)
    need_dc = frame in (0xC0, 0xC1, 0xC3) or (frame == 0xC2 and ss == 0 and ah == 0)
    need_ac = frame in (0xC0, 0xC1) or (frame == 0xC2 and ss > 0)
    blocks = 0
    for p in range(pos + 5, pos + 5 + 2 * ns, 2):
        component = components.get(data[p])
        if component is None:
            raise _Broken(f"scan at byte {pos} names unknown component {data[p]}")
        if not qtables >> component[0] & 1:
            raise _Broken(f"scan at byte {pos} uses undefined quantisation table {component[0]}")
        blocks += component[1]
        td_ta = data[p + 1]
        if td_ta & 0xCC:
            raise _Broken(f"scan at byte {pos} names Huffman tables 0x{td_ta:02x}")
        if (need_dc and not huffman >> (td_ta >> 4) & 1) or (
            need_ac and not huffman >> (4 + (td_ta & 3)) & 1
        ):
            raise _Broken(f"scan at byte {pos} uses undefined Huffman tables 0x{td_ta:02x}")
    if ns > 1 and blocks > 10:  # libjpeg: "Sampling factors too large for interleaved scan"
        raise _Broken(f"interleaved scan at byte {pos} has {blocks} blocks per MCU (at most 10)")


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
