"""Where an import's files come from: an uploaded zip, a URL, a path under ``sharing/``, an internal dir.

Everything here treats its input as hostile:

* zip: entries that would land outside the target (``../``, absolute paths, drive letters,
  symlink or device entries), encrypted entries and duplicate names are refused; the zip bomb
  limits (file count, total uncompressed size, per-entry and overall compression ratio) are
  checked from the central directory first and then enforced again while streaming, since the
  directory can lie.
* url: http/https only (redirects too, followed by hand), streamed to disk with a byte cap, an
  inactivity timeout and an overall deadline; optionally no private/loopback/link-local hosts; the
  download must be a zip and is then handled as one.
* path: must resolve (realpath, symlinks followed) inside the workspace's ``sharing/`` folder; a
  folder is used in place, a zip is extracted.

Errors say what and where: :class:`BadInput` (400) or :class:`TooLarge` (413).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from detkit.errors import BadInput, TooLarge
from hub.datasets.url_download import download
from hub.datasets.zip_members import MemberRef, corrupt, read_member

log = logging.getLogger(__name__)

CHUNK = 1 << 20
#: entries smaller than this are not held to the per-entry ratio (a tiny XML can compress 50x)
RATIO_FLOOR = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass
class Limits:
    """Size, count and time limits of one import (from the hub's settings)."""

    max_zip_bytes: int = 2 << 30
    max_total_uncompressed: int = 8 << 30
    max_ratio: float = 200.0
    max_files: int = 1_000_000
    url_max_bytes: int = 2 << 30
    url_timeout: float = 30.0  # seconds without a byte (connect or read) before a download fails
    max_image_pixels: int = 100_000_000
    url_deadline: float = 3600.0  # seconds a whole download may take (a slow-drip server cannot hold a worker)
    url_block_private: bool = False  # refuse URLs (and redirects) to loopback, private, link-local, reserved hosts


@dataclass
class Source:
    """An import source: ``kind`` is ``zip`` | ``url`` | ``path`` | ``dir``, ``value`` the path or URL."""

    kind: str
    value: str


def _entry_target(info: zipfile.ZipInfo) -> str | None:
    """The safe relative path of a zip entry, None for a directory entry; BadInput if it escapes."""
    name = info.filename
    shown = name[:200]
    if "\x00" in name:
        raise BadInput(f"zip entry {shown!r}: NUL in its name")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        raise BadInput(f"zip entry {shown!r}: absolute path refused")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadInput(f"zip entry {shown!r}: path escapes the extraction folder ('..')")
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_IFMT(mode):  # unix attributes present
        if stat.S_ISLNK(mode):
            raise BadInput(f"zip entry {shown!r}: symbolic link refused")
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise BadInput(f"zip entry {shown!r}: special file refused")
    if info.flag_bits & 0x1:
        raise BadInput(f"zip entry {shown!r}: encrypted entries are not supported")
    if not parts or info.filename.endswith("/"):  # a folder (or an empty name: nothing to extract)
        return None
    return "/".join(parts)


def _check_directory(infos: list[zipfile.ZipInfo], zip_size: int, limits: Limits, where: str) -> None:
    if len(infos) > limits.max_files:
        raise TooLarge(f"{where}: {len(infos)} entries exceed the limit of {limits.max_files} files")
    total = 0
    for info in infos:
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR and ratio > limits.max_ratio:
            raise TooLarge(
                f"{where}: entry {info.filename[:200]!r} expands {ratio:.0f}x "
                f"(limit {limits.max_ratio:.0f}x): zip bomb refused"
            )
    if total > limits.max_total_uncompressed:
        raise TooLarge(
            f"{where}: uncompressed size {total} bytes exceeds the limit of {limits.max_total_uncompressed}"
        )
    if total > RATIO_FLOOR and total / max(zip_size, 1) > limits.max_ratio:
        raise TooLarge(
            f"{where}: expands {total / max(zip_size, 1):.0f}x overall "
            f"(limit {limits.max_ratio:.0f}x): zip bomb refused"
        )


def _open_zip_file(path: Path, limits: Limits, where: str) -> tuple[zipfile.ZipFile, int]:
    size = path.stat().st_size
    if size > limits.max_zip_bytes:
        raise TooLarge(f"{where}: {size} bytes exceeds the limit of {limits.max_zip_bytes}")
    try:
        return zipfile.ZipFile(path), size
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError, EOFError) as exc:
        raise BadInput(f"{where}: not a readable zip file ({exc})") from None


def extract_zip(zip_path: Path, dest: Path, limits: Limits, where: str = "zip") -> int:
    """Extract ``zip_path`` into ``dest`` (which must exist) under the limits; returns files written."""
    zf, zip_size = _open_zip_file(zip_path, limits, where)
    with zf:
        tree = ZipTree(zf, zip_size, limits, where)  # every entry and directory check happens here
        dest_real = os.path.realpath(dest)
        made_dirs: set[str] = set()
        total = files = 0
        for rel, info in tree.files.items():
            target = os.path.join(dest_real, rel)
            parent = os.path.dirname(target)
            try:
                if parent not in made_dirs:
                    os.makedirs(parent, exist_ok=True)
                    made_dirs.add(parent)
                out = open(target, "xb")  # noqa: SIM115 - closed below; 'x' refuses duplicate names
            except (FileExistsError, IsADirectoryError, NotADirectoryError):
                raise BadInput(f"{where}: entry {info.filename[:200]!r} appears twice or clashes with "
                               "another entry (a file and a folder of one name)") from None
            with out:
                written = 0
                try:
                    with zf.open(info) as src:
                        while chunk := src.read(CHUNK):
                            written += len(chunk)
                            total += len(chunk)
                            if written > info.file_size:
                                raise TooLarge(
                                    f"{where}: entry {info.filename[:200]!r} holds more data than its "
                                    f"header declares ({info.file_size} bytes): zip bomb refused"
                                )
                            if total > limits.max_total_uncompressed:
                                raise TooLarge(
                                    f"{where}: uncompressed size exceeds the limit of "
                                    f"{limits.max_total_uncompressed} bytes"
                                )
                            out.write(chunk)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError,
                        OSError) as exc:
                    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                        raise  # our disk, not the zip
                    raise BadInput(f"{where}: entry {info.filename[:200]!r} is corrupt ({exc})") from None
            files += 1
    return files


def resolve_shared_path(value: str, sharing_dir: Path) -> Path:
    """The real path of ``value`` (relative to ``sharing_dir`` or absolute) if it lies inside it."""
    base = os.path.realpath(sharing_dir)
    raw = value if os.path.isabs(value) else os.path.join(base, value)
    real = os.path.realpath(raw)
    if os.path.commonpath([base, real]) != base:
        raise BadInput(f"path {value[:200]!r} is outside the sharing folder")
    if not os.path.exists(real):
        raise BadInput(f"path {value[:200]!r} does not exist in the sharing folder")
    return Path(real)


# --- reading a dataset in place: a folder or an archive, as one flat listing ------------------------


def _hidden(rel: str) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in rel.split("/"))


class DirTree:
    """The files of a folder by posix relpath; symlinks leading out of the folder are never read."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.label = str(root)
        self.skipped: list[dict] = []
        self.files: dict[str, str] = {}
        base_real = os.path.realpath(self.root)
        stack = [(str(self.root), "")]
        while stack:
            current, prefix = stack.pop()
            try:
                with os.scandir(current) as it:
                    entries = list(it)
            except OSError as exc:
                self.skipped.append({"file": prefix.rstrip("/") or ".", "reason": f"unreadable folder ({exc.strerror})"})
                continue
            for e in entries:
                rel = prefix + e.name
                if _hidden(e.name):
                    continue
                if e.is_symlink():
                    real = os.path.realpath(e.path)
                    if os.path.commonpath([base_real, real]) != base_real:
                        self.skipped.append({"file": rel, "reason": "symbolic link pointing outside the dataset"})
                    elif os.path.isdir(real):
                        self.skipped.append({"file": rel, "reason": "symbolic link to a folder is not followed"})
                    elif os.path.isfile(real):
                        self.files[rel] = e.path
                elif e.is_dir(follow_symlinks=False):
                    stack.append((e.path, rel + "/"))
                elif e.is_file(follow_symlinks=False):
                    self.files[rel] = e.path
        self.files = dict(sorted(self.files.items()))

    def read(self, ref: str) -> bytes:
        with open(ref, "rb") as fh:
            return fh.read()

    def member_ref(self, ref: str) -> tuple:
        """What another process needs to read this file itself: its path."""
        return ("file", ref)


class ZipTree:
    """The files of a zip read in place (no extraction), under the same checks as :func:`extract_zip`.

    Reads are thread-safe (zipfile serialises the shared file handle) and never return more than
    an entry's declared size, which the central directory checks already bounded.
    """

    def __init__(self, zf: zipfile.ZipFile, zip_size: int, limits: Limits, where: str):
        self.zf, self.label, self.skipped = zf, where, []
        infos = zf.infolist()
        targets = [(info, _entry_target(info)) for info in infos]
        if not any(t for _, t in targets):
            raise BadInput(f"{where}: the zip is empty")
        _check_directory(infos, zip_size, limits, where)
        self.files: dict[str, zipfile.ZipInfo] = {}
        for info, rel in targets:
            if rel is None or _hidden(rel):
                continue
            if rel in self.files:
                raise BadInput(f"{where}: entry {info.filename[:200]!r} appears twice")
            self.files[rel] = info
        self.files = dict(sorted(self.files.items()))
        try:
            self._fd: int | None = zf.fp.fileno()
        except (AttributeError, OSError, ValueError):  # a zip in memory: zipfile reads it
            self._fd = None

    def read(self, info: zipfile.ZipInfo) -> bytes:
        data = self._read_direct(info) if self._fd is not None else None
        if data is None:
            data = self._read_zipfile(info)
        if len(data) > info.file_size:
            raise TooLarge(f"{self.label}: entry {info.filename[:200]!r} holds more data than declared")
        return data

    def _corrupt(self, info: zipfile.ZipInfo, why: str) -> BadInput:
        return corrupt(self.label, info, why)

    def _read_direct(self, info: zipfile.ZipInfo) -> bytes | None:
        return read_member(self._fd, info, self.label)

    def member_ref(self, info: zipfile.ZipInfo) -> tuple | None:
        """What another process needs to read this entry itself (:func:`read_member` on the zip's
        path), or None when only zipfile can read it (compression other than stored/deflated)."""
        if self._fd is None or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            return None
        return ("zip", self.zf.filename, MemberRef(info.filename, info.orig_filename, info.header_offset,
                                                    info.compress_size, info.file_size, info.CRC,
                                                    info.compress_type, info.flag_bits))

    def _read_zipfile(self, info: zipfile.ZipInfo) -> bytes:
        try:
            with self.zf.open(info) as src:
                return src.read(info.file_size + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError) as exc:
            raise self._corrupt(info, str(exc)) from None


FileTree = DirTree | ZipTree


def _zip_tree(path: Path, limits: Limits, where: str, stack) -> ZipTree:
    zf, zip_size = _open_zip_file(path, limits, where)
    stack.callback(zf.close)
    return ZipTree(zf, zip_size, limits, where)


@contextmanager
def open_tree(source: Source, *, sharing_dir: Path, tmp_dir: Path, limits: Limits) -> Iterator[FileTree]:
    """Like :func:`open_source`, but archives are read in place instead of being extracted first.

    Yields a :class:`ZipTree` for ``zip``, ``url`` and a zip under ``sharing/``, a
    :class:`DirTree` for folders. Same checks and errors as :func:`open_source`; faster, and no
    temporary copy of the dataset on disk.
    """
    with ExitStack() as stack:
        if source.kind == "zip":
            path = Path(source.value)
            if not path.is_file():
                raise BadInput(f"zip {source.value[:200]!r} not found")
            yield _zip_tree(path, limits, f"zip {path.name[:200]!r}", stack)
        elif source.kind == "url":
            Path(tmp_dir).mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix="import-", dir=tmp_dir))
            stack.callback(shutil.rmtree, work, ignore_errors=True)
            dest = work / "download.zip"
            download(source.value, dest, limits)
            if not zipfile.is_zipfile(dest):
                raise BadInput(f"url {source.value[:200]!r}: the download is not a zip file")
            yield _zip_tree(dest, limits, f"url {source.value[:200]!r}", stack)
        elif source.kind == "path" and zipfile.is_zipfile(resolve_shared_path(source.value, sharing_dir)):
            path = resolve_shared_path(source.value, sharing_dir)
            yield _zip_tree(path, limits, f"path {source.value[:200]!r}", stack)
        else:
            with open_source(source, sharing_dir=sharing_dir, tmp_dir=tmp_dir, limits=limits) as root:
                yield DirTree(root)


def _extracted(zip_path: Path, work: Path, limits: Limits, where: str) -> Path:
    out = work / "files"
    out.mkdir()
    extract_zip(zip_path, out, limits, where)
    return out


def _open_zip(source: Source, sharing_dir: Path, work: Path, limits: Limits) -> Path:
    path = Path(source.value)
    if not path.is_file():
        raise BadInput(f"zip {source.value[:200]!r} not found")
    return _extracted(path, work, limits, f"zip {path.name[:200]!r}")


def _open_url(source: Source, sharing_dir: Path, work: Path, limits: Limits) -> Path:
    dest = work / "download.zip"
    download(source.value, dest, limits)
    if not zipfile.is_zipfile(dest):
        raise BadInput(f"url {source.value[:200]!r}: the download is not a zip file")
    return _extracted(dest, work, limits, f"url {source.value[:200]!r}")


def _open_path(source: Source, sharing_dir: Path, work: Path, limits: Limits) -> Path:
    real = resolve_shared_path(source.value, sharing_dir)
    if real.is_dir():
        return real
    if zipfile.is_zipfile(real):
        return _extracted(real, work, limits, f"path {source.value[:200]!r}")
    raise BadInput(f"path {source.value[:200]!r} is neither a folder nor a zip file")


def _open_dir(source: Source, sharing_dir: Path, work: Path, limits: Limits) -> Path:
    path = Path(source.value)
    if not path.is_dir():
        raise BadInput(f"dir {source.value[:200]!r} is not a folder")
    return path


_OPENERS: dict[str, Callable[[Source, Path, Path, Limits], Path]] = {
    "zip": _open_zip,
    "url": _open_url,
    "path": _open_path,
    "dir": _open_dir,
}


@contextmanager
def open_source(source: Source, *, sharing_dir: Path, tmp_dir: Path, limits: Limits) -> Iterator[Path]:
    """Yield a local folder with the dataset's files; temporary files are removed afterwards.

    ``zip``: a local zip (an upload), extracted; ``url``: downloaded then extracted; ``path``: a
    folder or zip under ``sharing_dir``; ``dir``: a trusted internal folder, used as is.
    Raises :class:`BadInput` / :class:`TooLarge` saying what and where.
    """
    opener = _OPENERS.get(source.kind)
    if opener is None:
        raise BadInput(f"unknown source kind {source.kind!r} (expected one of {', '.join(_OPENERS)})")
    Path(tmp_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="import-", dir=tmp_dir))
    try:
        yield opener(source, Path(sharing_dir), work, limits)
    finally:
        shutil.rmtree(work, ignore_errors=True)
