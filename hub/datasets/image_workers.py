"""Images read, verified, hashed and stored by worker processes while the import parses annotations.

The per-image work of an import -- read the file (a zip entry by its central-directory fields, or a
folder file by path), verify its structure (:func:`detkit.image_inspect.inspect_image`), sha1 it,
create the asset file (:func:`hub.datasets.asset_store.store_asset`) -- needs nothing the parsing
of the annotations produces. For a big import it runs in worker processes (a fresh ``python -I``
importing only the standard library and three small modules, ~40 ms), on the other core, while the
importing thread parses the annotation files; the importing thread then only attaches the
annotations to the verified images. Each worker gets contiguous chunks of ``(index, where, ref)``
through a pipe and answers each chunk with its results:

* ``(index, "ok", sha1, format, width, height, size, created_path | None)``
* ``(index, "skip", reason)`` -- not an image, truncated, unreadable: the same messages as inline
* ``(index, "parent")`` -- an entry only zipfile can read: the importing thread does it
* ``(index, "fatal", message)`` -- an entry holding more than it declares (a zip bomb): the import stops
* ``(index, "error", message)`` -- an asset file could not be written: the import stops

A worker that dies makes the import fail with its last words; files it created are listed by the
results it sent, and :meth:`ImageWorkers.stop` lets the workers finish what they were given before
the caller removes them, so nothing is left behind.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from detkit.errors import BadInput, TooLarge
from hub.datasets.asset_store import grow_pipe

_FRAME = struct.Struct("<I")
CHUNK = 512  # images per message: ~25 ms of a worker's time against at most a 5 ms GIL wait to send it
_ROOT = str(Path(__file__).resolve().parents[2])


class _Worker:
    def __init__(self, args: list[str], chunks: list[list[tuple]], on_results: Callable[[list], None]):
        self.proc = subprocess.Popen([sys.executable, "-I", "-c", _CHILD, _ROOT, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)
        grow_pipe(self.proc.stdin.fileno())
        self.chunks, self.on_results = chunks, on_results
        self.stopping = False
        self.outcome: str | None = None  # "" once it ended well
        self.feeder = threading.Thread(target=self._feed, name="image-feed", daemon=True)
        self.reader = threading.Thread(target=self._read, name="image-read", daemon=True)
        self.feeder.start()
        self.reader.start()

    def _feed(self) -> None:
        try:
            for chunk in self.chunks:
                if self.stopping:
                    break
                frame = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
                self.proc.stdin.write(_FRAME.pack(len(frame)) + frame)
                self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):  # the worker died: wait() reports why
            pass
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            head = out.read(_FRAME.size)
            if len(head) < _FRAME.size:
                return
            (size,) = _FRAME.unpack(head)
            body = out.read(size)
            if len(body) < size:
                return
            self.on_results(pickle.loads(body))

    def wait(self) -> str | None:
        """Wait for the worker; why it failed, or None (idempotent)."""
        if self.outcome is not None:
            return self.outcome or None
        self.feeder.join()
        self.reader.join()
        err = self.proc.stderr.read()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.outcome = ""
        if self.proc.returncode != 0:
            self.outcome = f"exit status {self.proc.returncode}: {err.decode(errors='replace')[-500:].strip()}"
        return self.outcome or None


class ImageWorkers:
    """Run the per-image work of ``items`` -- ``(index, where, member_ref)``, ``index`` below
    ``slots`` (the import's image count: images without a member ref are not among the items) --
    in ``processes`` workers."""

    def __init__(self, assets_dir, label: str, max_pixels: int, items: list[tuple], processes: int,
                 slots: int | None = None):
        self.total = len(items)
        self.results_by_index: list[tuple | None] = [None] * (self.total if slots is None else slots)
        self.done = 0
        self.cond = threading.Condition()
        chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
        args = [str(assets_dir), label, str(int(max_pixels)), str(os.getpid())]
        self.workers: list[_Worker] = []
        try:
            for w in range(processes):  # contiguous chunks dealt round-robin: each worker starts at once
                self.workers.append(_Worker(args, chunks[w::processes], self._collect))
        except BaseException:
            self.stop()
            raise

    def _collect(self, results: list) -> None:
        with self.cond:
            for r in results:
                self.results_by_index[r[0]] = r
            self.done += len(results)
            self.cond.notify_all()

    def wait(self, progress: Callable[[int, int], None] | None = None) -> list[tuple]:
        """Every result in index order, reporting ``progress(done, total)`` while waiting. Raises
        TooLarge / OSError for a fatal result or a failed worker (after every worker stopped)."""
        step = max(1, self.total // 50)
        last = -1
        with self.cond:
            while self.done < self.total and any(w.proc.poll() is None or w.reader.is_alive() for w in self.workers):
                if progress is not None and self.done // step != last:
                    last = self.done // step
                    progress(self.done, self.total)
                self.cond.wait(0.05)
        failures = [why for why in (w.wait() for w in self.workers) if why]
        if progress is not None:
            progress(self.done, self.total)
        for r in self.results_by_index:
            if r is not None and r[1] == "fatal":
                raise TooLarge(r[2])
        errors = [r[2] for r in self.results_by_index if r is not None and r[1] == "error"]
        if errors:
            raise OSError(f"storing assets failed: {errors[0]}")
        if failures or self.done < self.total:
            raise OSError(f"an image worker process failed ({'; '.join(failures) or 'results missing'})")
        return self.results_by_index  # type: ignore[return-value]

    def stop(self) -> None:
        """Let the workers finish what they were sent (no file lands after this returns)."""
        for w in self.workers:
            w.stopping = True
        for w in self.workers:
            w.wait()

    def created(self) -> list[str]:
        """Asset files the workers reported creating so far."""
        return [r[7] for r in self.results_by_index if r is not None and r[1] == "ok" and r[7] is not None]


def serve(inp, out, assets_dir: str, label: str, max_pixels: int, parent: int | None = None) -> None:
    """The worker's loop: request frames in until EOF, one result frame out per request frame.

    ``parent``: the importing process's pid -- the worker dies with it, so an import SIGKILLed
    half-way leaves no worker storing the chunks still queued in its pipe.
    """
    from detkit.image_inspect import inspect_image
    from hub.datasets.asset_store import asset_path_str, die_with_parent, parent_gone, store_asset
    from hub.datasets.zip_members import RefReader

    if parent is not None:
        die_with_parent(parent)

    grow_pipe(out.fileno())
    reader = RefReader(label)
    made: set[str] = set()
    while True:
        head = inp.read(_FRAME.size)
        if len(head) < _FRAME.size:
            break
        (size,) = _FRAME.unpack(head)
        results = []
        for index, where, mref in pickle.loads(inp.read(size)):
            if parent is not None and parent_gone(parent):
                os._exit(1)
            try:
                data = reader.read(mref)
                if data is None:
                    results.append((index, "parent"))
                    continue
                image = inspect_image(data, max_pixels, where=where)
            except TooLarge as exc:
                results.append((index, "fatal", exc.message))
                continue
            except BadInput as exc:
                results.append((index, "skip", exc.message))
                continue
            except OSError as exc:
                results.append((index, "skip", f"unreadable ({exc.strerror or exc})"))
                continue
            sha1 = hashlib.sha1(data).hexdigest()
            try:
                created = store_asset(assets_dir, sha1, data, made)
            except OSError as exc:
                results.append((index, "error", f"{asset_path_str(assets_dir, sha1)}: {exc.strerror or exc}"))
                continue
            results.append((index, "ok", sha1, image.format, image.width, image.height, len(data), created))
        frame = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_FRAME.pack(len(frame)) + frame)
        out.flush()


_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from hub.datasets.image_workers import serve
serve(sys.stdin.buffer, sys.stdout.buffer, sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
"""
