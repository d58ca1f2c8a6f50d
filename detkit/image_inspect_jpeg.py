"""The JPEG part of :func:`detkit.image_inspect.inspect_image`: markers, tables, frame and scan headers
checked without decoding a pixel (standard library only)."""

from __future__ import annotations

import functools
import operator
import re

from detkit.image_faults import Broken as _Broken
from detkit.image_faults import Truncated as _Truncated
from detkit.image_faults import check_size as _check_size

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


def inspect_jpeg(data: bytes, max_pixels: int, where: str) -> tuple[int, int]:
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
