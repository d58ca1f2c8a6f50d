"""Zip entries read by their central-directory fields, with one ``pread``: by the importing thread
(:class:`hub.datasets.sources.ZipTree`) and by worker processes that get only a reference
(:class:`RefReader`). Same checks as zipfile: local header, name, declared size, CRC.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from typing import NamedTuple

from detkit.errors import BadInput, TooLarge

#: a zip local file header (signature .. extra field length), as in APPNOTE 4.3.7
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


class MemberRef(NamedTuple):
    """The central-directory fields :func:`read_member` needs (a ``zipfile.ZipInfo`` has them too)."""

    filename: str
    orig_filename: str
    header_offset: int
    compress_size: int
    file_size: int
    CRC: int  # noqa: N815 - zipfile's name
    compress_type: int
    flag_bits: int


class RefReader:
    """Reads what ``member_ref`` described, in another process: zip entries by their fields
    (:func:`read_member`, one descriptor per zip), folder files by path."""

    def __init__(self, label: str):
        self.label = label
        self.fds: dict[str, int] = {}

    def read(self, ref: tuple) -> bytes | None:
        """The bytes; None when only zipfile can read the entry; BadInput / TooLarge / OSError like
        :meth:`ZipTree.read` and :meth:`DirTree.read`."""
        if ref[0] != "zip":
            with open(ref[1], "rb") as fh:
                return fh.read()
        fd = self.fds.get(ref[1])
        if fd is None:
            fd = self.fds[ref[1]] = os.open(ref[1], os.O_RDONLY)
        info = ref[2]
        data = read_member(fd, info, self.label)
        if data is not None and len(data) > info.file_size:
            raise TooLarge(f"{self.label}: entry {info.filename[:200]!r} holds more data than declared")
        return data


def corrupt(label: str, info, why: str) -> BadInput:
    return BadInput(f"{label}: entry {info.filename[:200]!r} is corrupt ({why})")


def read_member(fd: int, info, label: str) -> bytes | None:
    """A stored or deflated zip entry read with one ``pread`` (thread-safe, no lock, no seek) and
    checked like zipfile checks it (local header, name, size, CRC); None: let zipfile read it.

    ``info`` is a ``zipfile.ZipInfo`` or a :class:`MemberRef`. Raises :class:`BadInput` naming the
    entry when it is corrupt; never returns more than the declared size + 1 bytes.
    """
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return None
    name = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "replace")
    want = _LOCAL_HEADER.size + len(name) + 64 + info.compress_size
    try:
        buf = os.pread(fd, want, info.header_offset)
    except OSError as exc:
        raise corrupt(label, info, exc.strerror or str(exc)) from None
    if len(buf) < _LOCAL_HEADER.size or buf[:4] != b"PK\x03\x04":
        raise corrupt(label, info, "bad local file header")
    name_len, extra_len = _LOCAL_HEADER.unpack_from(buf)[-2:]
    start = _LOCAL_HEADER.size + name_len + extra_len
    if buf[_LOCAL_HEADER.size:_LOCAL_HEADER.size + name_len] != name:
        return None  # names differ in encoding details: zipfile's own rules decide
    if start + info.compress_size > len(buf):
        try:
            buf = os.pread(fd, start + info.compress_size, info.header_offset)
        except OSError as exc:
            raise corrupt(label, info, exc.strerror or str(exc)) from None
        if start + info.compress_size > len(buf):
            raise corrupt(label, info, "the archive ends inside this entry")
    raw = buf[start:start + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        data = raw
    else:
        inflater = zlib.decompressobj(-15)
        try:  # never more than the declared size (+1 to notice a lying header)
            data = inflater.decompress(raw, info.file_size + 1)
        except zlib.error as exc:
            raise corrupt(label, info, f"deflate: {exc}") from None
    if len(data) < info.file_size:
        raise corrupt(label, info, f"{len(data)} bytes where the header declares {info.file_size}")
    if len(data) == info.file_size and zlib.crc32(data) != info.CRC:
        raise corrupt(label, info, "CRC mismatch")
    return data
