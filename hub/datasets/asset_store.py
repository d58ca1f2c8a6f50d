"""The content-addressed asset store on disk, and writers that fill it during an import.

Every image lives once at ``assets_dir/<sha1[-2:]>/<sha1>``. :func:`store_asset` creates it with
``O_EXCL`` in one ``write``: two writers never share a file, an asset that exists with the right
size is never rewritten, and a file of another size (a write a crash cut short) is replaced
atomically (temp name + ``os.replace``). Nothing reads an asset before the import that stored it
commits its rows.

Creating ten thousand small files is mostly kernel time, and on a busy or freshly-trimmed file
system it can cost more than everything else an import does per image. A Python thread cannot
overlap it with the import's own work (each syscall hands the GIL back and forth), so big imports
use a :class:`ProcessWriter`: small child processes (stdlib only, started in ~20 ms, one per core up
to two) that receive ``(sha1, bytes)`` over a pipe and create the files on the other core while
the import parses and verifies the next images. :class:`InlineWriter` does the same in the caller, for small imports.

This module imports nothing but the standard library: the child process loads it by path.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import struct
import subprocess
import sys
import threading

_tmp_counter = itertools.count()
#: one message to the child: path length, data length, then the path (utf-8) and the data
_HEADER = struct.Struct("<HI")
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux); absent from older fcntl modules
PIPE_BYTES = 1 << 20
#: writer processes of a ProcessWriter
WRITER_PROCESSES = max(1, min(2, os.cpu_count() or 1))


def grow_pipe(fd: int) -> None:
    """Give a pipe 1 MiB of buffer (Linux), so its writer blocks less often."""
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, OSError):  # a smaller pipe only means more waiting
        pass


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this worker process the moment ``parent`` (the process, and thread,
    that started it) dies; exit at once if it already has.

    A worker outliving a SIGKILLed import would go on storing the images still queued in its pipe
    after the hub's start-up recovery removed the killed import's files, leaving orphans again.
    ``PR_SET_PDEATHSIG`` is Linux's; elsewhere :func:`parent_gone` checked per message does it.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError, ImportError):
        pass
    if parent_gone(parent):
        os._exit(1)


def parent_gone(parent: int) -> bool:
    """Whether the process that started this worker has died (it was re-parented)."""
    return os.getppid() != parent


def asset_path_str(assets_dir, sha1: str) -> str:
    """``assets_dir/<sha1[-2:]>/<sha1>`` as a string (a hot path: no pathlib, no os.path.join)."""
    base = str(assets_dir)
    return f"{base}{'' if base.endswith('/') else '/'}{sha1[-2:]}/{sha1}"


def store_asset(assets_dir, sha1: str, data: bytes, made_dirs: set[str] | None = None) -> str | None:
    """Store ``data`` as the asset ``sha1``; the path if this call created the file, else None.

    See the module docstring. (Two imports racing on one new sha1 may both report it created;
    the hub checks its rows before deleting such a file.) ``made_dirs`` caches the shard folders
    already made, a hot-path saving on big imports.
    """
    folder = os.path.join(assets_dir, sha1[-2:])
    final = os.path.join(folder, sha1)
    if made_dirs is None or folder not in made_dirs:
        os.makedirs(folder, exist_ok=True)
        if made_dirs is not None:
            made_dirs.add(folder)
    try:
        fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    except FileExistsError:
        try:
            if os.stat(final).st_size == len(data):
                return None
        except FileNotFoundError:
            pass
        return _replace_asset(folder, final, sha1, data)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        os.unlink(final)
        raise
    os.close(fd)
    return final


def _replace_asset(folder: str, final: str, sha1: str, data: bytes) -> str:
    tmp = os.path.join(folder, f".{sha1}.{os.getpid()}.{next(_tmp_counter)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return final


class InlineWriter:
    """Writes each asset in the calling thread (small imports, and the fallback)."""

    def __init__(self, assets_dir):
        self.assets_dir = str(assets_dir)
        self.made_dirs: set[str] = set()

    def put(self, sha1: str, data: bytes) -> str | None:
        """Store the asset now; the path if this call created it."""
        return store_asset(self.assets_dir, sha1, data, self.made_dirs)

    def close(self) -> list[str]:
        return []

    def abort(self) -> list[str]:
        return []


class _Child:
    """One writer process: messages in through a pipe, a JSON report out when the pipe closes."""

    def __init__(self, assets_dir: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD, __file__, assets_dir, str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True,
        )
        grow_pipe(self.proc.stdin.fileno())
        self.lock = threading.Lock()
        self.result: dict | None = None

    def send(self, name: bytes, data: bytes) -> None:
        with self.lock:  # one message at a time when several threads import
            self.proc.stdin.write(_HEADER.pack(len(name), len(data)) + name)
            self.proc.stdin.write(data)

    def finish(self) -> dict:
        if self.result is None:
            out, err = self.proc.communicate()  # flushes and closes our end of the pipe first
            try:
                self.result = json.loads(out)
            except ValueError:
                tail = err.decode(errors="replace")[-500:].strip()
                self.result = {"error": f"exit status {self.proc.returncode}: {tail}", "existed": []}
        return self.result

    def kill(self) -> None:
        if self.result is None:
            self.proc.kill()
            self.proc.wait()
            self.result = {"error": "aborted", "existed": []}
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    stream.close()
                except OSError:  # BrokenPipeError flushing what the killed child never read
                    pass


class ProcessWriter:
    """Writes assets in child processes, overlapping file creation with the caller's work.

    :meth:`put` sends the asset to a child (chosen by its shard folder, so one folder is only
    ever written by one child) and returns its path at once as "created by this import";
    :meth:`close` waits for the children, raises ``OSError`` naming the file if a write failed,
    and returns the paths a child found already stored (by another import: not ours).
    :meth:`abort` stops them. Either way the paths sent are the ones to delete if the import fails.
    """

    def __init__(self, assets_dir, processes: int | None = None):
        self.assets_dir = str(assets_dir)
        self.sent: set[str] = set()
        n = processes or WRITER_PROCESSES
        self._children: list[_Child] = []
        try:
            for _ in range(n):
                self._children.append(_Child(self.assets_dir))
        except BaseException:
            self.abort()
            raise

    def put(self, sha1: str, data: bytes) -> str | None:
        path = asset_path_str(self.assets_dir, sha1)
        if path in self.sent:
            return None
        child = self._children[int(sha1[-2:], 16) % len(self._children)]
        try:
            child.send(sha1.encode(), data)
        except BrokenPipeError:
            raise OSError(f"the asset writer process stopped ({child.finish().get('error') or 'no reason given'})") from None
        self.sent.add(path)
        return path

    def close(self) -> list[str]:
        """Wait for every write; the paths of files that existed after all (not created by us)."""
        results = [c.finish() for c in self._children]
        existed = [asset_path_str(self.assets_dir, s) for r in results for s in r.get("existed", [])]
        self.sent.difference_update(existed)
        errors = [r["error"] for r in results if r.get("error")]
        if errors:
            raise OSError(f"storing assets failed: {'; '.join(errors)}")
        return existed

    def abort(self) -> list[str]:
        """Stop the children and wait for them (what they wrote stays; the caller deletes what it sent)."""
        for c in self._children:
            c.kill()
        return []


def serve(assets_dir: str, inp, out, parent: int | None = None) -> None:
    """The child's loop: messages from ``inp`` until EOF, then a JSON report on ``out``.

    ``parent``: the importing process's pid -- the child dies with it (:func:`die_with_parent`).
    """
    if parent is not None:
        die_with_parent(parent)
    made: set[str] = set()
    existed: list[str] = []
    error = None
    read = inp.read
    while True:
        head = read(_HEADER.size)
        if len(head) < _HEADER.size:
            break
        name_len, size = _HEADER.unpack(head)
        sha1 = read(name_len).decode()
        data = read(size)
        if parent is not None and parent_gone(parent):
            os._exit(1)
        if error is not None:
            continue  # keep draining so the parent never blocks on a full pipe
        try:
            if store_asset(assets_dir, sha1, data, made) is None:
                existed.append(sha1)
        except OSError as exc:
            error = f"{asset_path_str(assets_dir, sha1)}: {exc.strerror or exc}"
    out.write(json.dumps({"existed": existed, "error": error}).encode())
    out.flush()


_CHILD = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ymir_asset_store", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
mod.serve(sys.argv[2], sys.stdin.buffer, sys.stdout.buffer, int(sys.argv[3]))
"""
