"""Annotation files parsed in worker processes while the import verifies and stores the images.

Parsing VOC XML or YOLO text is Python holding the GIL: a thread cannot run it beside the
import's own work, a process can. For a big import (:data:`PARALLEL_MIN` files or more) the
annotation files are split into contiguous chunks, one per worker process (a fresh interpreter,
``python -I``, started in ~50 ms), which reads its files itself -- zip entries by their
central-directory fields (:func:`hub.datasets.sources.read_member`), folder files by path -- parses
them with the same functions and the same error handling as the inline path
(:func:`hub.datasets.layout.read_side`), and sends back one pickled list. Meanwhile the caller
goes on with the images. A worker that fails in any way (killed, out of memory, a bug) costs only
time: its chunk is parsed inline.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from detkit.errors import BadInput, TooLarge
from detkit.io.voc import parse_voc
from detkit.io.yolo import parse_yolo

log = logging.getLogger(__name__)

#: fewer annotation files than this are parsed inline (starting processes would cost more)
PARALLEL_MIN = 1000
_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the hub and detkit packages

#: (relpath, where, result): result is the parsed annotation, or the message of why it is unusable
Result = tuple[str, str, object]


def parse_one(fmt: str, names: list[str] | None, data: bytes, where: str):
    """One annotation file's content parsed as ``fmt`` ("voc" | "yolo")."""
    return parse_voc(data, where) if fmt == "voc" else parse_yolo(data, names or [], where)


def parse_inline(fmt: str, names: list[str] | None, rel: str, where: str, read: Callable[[], bytes]) -> Result:
    """Read and parse one file; per-file problems become the result's message (TooLarge raises)."""
    try:
        return rel, where, parse_one(fmt, names, read(), where)
    except BadInput as exc:
        return rel, where, exc.message
    except OSError as exc:
        return rel, where, f"{where}: unreadable ({exc.strerror or exc})"


class ParseWorkers:
    """Parse ``items`` -- ``(relpath, where, ref, member_ref)`` -- in ``processes`` workers."""

    def __init__(self, fmt: str, names: list[str] | None, label: str, items: list[tuple], processes: int,
                 read: Callable[[object], bytes]):
        self.fmt, self.names, self.label, self.read = fmt, names, label, read
        size = -(-len(items) // processes)
        self.chunks = [items[i:i + size] for i in range(0, len(items), size)]
        self.procs: list[subprocess.Popen | None] = []
        self.feeders: list[threading.Thread] = []
        for chunk in self.chunks:
            request = pickle.dumps({"fmt": fmt, "names": names, "label": label,
                                    "items": [(rel, where, mref) for rel, where, _, mref in chunk]},
                                   protocol=pickle.HIGHEST_PROTOCOL)
            try:
                proc = subprocess.Popen([sys.executable, "-I", "-c", _CHILD, _ROOT], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)
            except OSError as exc:
                log.warning("annotation parse worker unavailable (%s): parsing inline", exc)
                self.procs.append(None)
                continue
            self.procs.append(proc)
            feeder = threading.Thread(target=_feed, args=(proc, request), name="parse-feed", daemon=True)
            feeder.start()
            self.feeders.append(feeder)

    def results(self) -> list[Result]:
        """Every item's result, in item order (waits for the workers)."""
        for feeder in self.feeders:
            feeder.join()
        out: list[Result] = []
        for chunk, proc in zip(self.chunks, self.procs, strict=True):
            got = _collect(proc) if proc is not None else None
            if got is None or len(got) != len(chunk):
                got = [None] * len(chunk)  # the worker failed: every file of its chunk inline
            for (rel, where, ref, _), res in zip(chunk, got, strict=True):
                if res is None:  # the worker could not read this one (or failed): inline
                    res = parse_inline(self.fmt, self.names, rel, where, lambda r=ref: self.read(r))
                elif res[2].__class__ is tuple and res[2] and res[2][0] == "too-large":
                    raise TooLarge(res[2][1])
                out.append(res)
        return out

    def close(self) -> None:
        """Stop the workers (an import that failed before needing their results)."""
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        for feeder in self.feeders:
            feeder.join()
        for proc in self.procs:
            if proc is not None:
                proc.stdout.close()
                proc.stderr.close()


def _feed(proc: subprocess.Popen, request: bytes) -> None:
    try:
        proc.stdin.write(request)
        proc.stdin.close()
    except (BrokenPipeError, ValueError, OSError):  # the worker died: results() parses inline
        pass


def _collect(proc: subprocess.Popen) -> list | None:
    # the feeder thread wrote and closed stdin; the worker writes its answer, then exits
    # (stderr is only written on a failure, and little: reading it second cannot dead-lock)
    out = proc.stdout.read()
    err = proc.stderr.read()
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    if proc.returncode != 0:
        log.warning("annotation parse worker failed (exit %s): %s", proc.returncode,
                    err.decode(errors="replace")[-500:].strip())
        return None
    try:
        return pickle.loads(out)
    except Exception as exc:  # noqa: BLE001 - any garbage from a worker means: parse inline
        log.warning("annotation parse worker sent an unreadable answer (%s)", exc)
        return None


def serve(inp, out) -> None:
    """The worker's side: one pickled request in, one pickled list of results out."""
    from hub.datasets.zip_members import RefReader

    req = pickle.load(inp)
    fmt, names, label = req["fmt"], req["names"], req["label"]
    reader = RefReader(label)
    results: list = []
    for rel, where, mref in req["items"]:
        try:
            data = reader.read(mref) if mref is not None else None
            if data is None:  # only zipfile reads it: the caller parses it inline
                results.append(None)
                continue
            results.append((rel, where, parse_one(fmt, names, data, where)))
        except TooLarge as exc:
            results.append((rel, where, ("too-large", exc.message)))
        except BadInput as exc:
            results.append((rel, where, exc.message))
        except OSError as exc:
            results.append((rel, where, f"{where}: unreadable ({exc.strerror or exc})"))
    pickle.dump(results, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from hub.datasets.parse_workers import serve
serve(sys.stdin.buffer, sys.stdout.buffer)
"""
