"""Phase 1 of an import: every image read, verified by structure, hashed and stored, in one of
three ways chosen by size -- worker processes (:mod:`hub.datasets.image_workers`) for big imports,
else the importing thread (``workers`` threads, default one) with the writes in child processes
(:mod:`hub.datasets.asset_store`) from :data:`PROCESS_WRITER_MIN` images on. The per-image step
itself is ``_Ingest.store`` in :mod:`hub.datasets.ingest`; the results are :class:`Stored`.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from detkit.imaging import ImageInfo
from hub.datasets.asset_store import InlineWriter, ProcessWriter
from hub.datasets.image_workers import ImageWorkers
from hub.datasets.layout import Layout
from hub.datasets.sources import FileTree, Limits

if TYPE_CHECKING:
    from hub.datasets.ingest import _Ingest

log = logging.getLogger(__name__)

#: imports of at least this many images hand the per-image work to child processes
#: (:mod:`hub.datasets.image_workers`, else :mod:`hub.datasets.asset_store` for the writes)
PROCESS_WRITER_MIN = 500
#: worker processes verifying, hashing and storing the images of a big import
IMAGE_PROCESSES = max(1, min(2, os.cpu_count() or 1))


@dataclass(slots=True)
class Stored:
    """One image after the first phase: verified, hashed, handed to the writer (or why not)."""

    rel: str  # relative to the images folder
    shown: str  # relative to the dataset base, for the report
    sha1: str = ""
    info: ImageInfo | None = None
    size: int = 0
    created: str | None = None
    skip_reason: str | None = None


# (image relpath, tree ref)
Item = tuple[str, object]


def _run_chunk(run: _Ingest, items: list[Item]) -> list[Stored]:
    """Phase 1 on a chunk (a failure midway is cleaned up by the caller, from ``run.created``)."""
    return [run.store(item) for item in items]


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def default_workers() -> int:
    # Since images are verified by structure instead of decoded, what is left per image is mostly
    # Python holding the GIL plus short file syscalls: a second thread only adds GIL hand-offs
    # (1.60 s with one thread vs 1.9-2.2 s with two for 10,000 images, scripts/bench/import_voc.py).
    return 1


def image_workers_for(tree: FileTree, layout: Layout, assets_dir: Path, limits: Limits) -> ImageWorkers | None:
    """Worker processes for the per-image work of a big import (None: do it in this thread)."""
    total = len(layout.images)
    if total < PROCESS_WRITER_MIN or IMAGE_PROCESSES < 1 or not hasattr(tree, "member_ref"):
        return None
    items = []
    for i, (rel, ref) in enumerate(layout.images.items()):
        mref = tree.member_ref(ref)
        if mref is not None:
            items.append((i, f"{layout.images_dir}/{rel}", mref))
    if len(items) < total // 2:
        return None
    try:
        return ImageWorkers(assets_dir, tree.label, limits.max_image_pixels, items, IMAGE_PROCESSES, slots=total)
    except OSError as exc:  # no process to spare: the same work in this thread
        log.warning("image worker processes unavailable (%s): working inline", exc)
        return None


def stored_by_workers(run: _Ingest, image_workers: ImageWorkers, layout: Layout,
                       progress: Callable[[int, int], None] | None) -> list[Stored]:
    """Phase 1 from the workers' results (entries they could not read are done here)."""
    results = image_workers.wait(progress)  # by image index; None where no worker got the image
    stored: list[Stored] = []
    for r, item in zip(results, layout.images.items(), strict=True):
        rel = item[0]
        if r is None or r[1] == "parent":
            stored.append(run.store(item))
        elif r[1] == "ok":
            _, _, sha1, fmt, w, h, size, created = r
            stored.append(Stored(rel, f"{layout.images_dir}/{rel}", sha1, ImageInfo(fmt, w, h), size, created))
            if created is not None:
                run.created.append(created)
        else:  # "skip"
            stored.append(Stored(rel, f"{layout.images_dir}/{rel}", skip_reason=r[2]))
    return stored


def store_images(run: _Ingest, layout: Layout, workers: int,
                  progress: Callable[[int, int], None] | None) -> list[Stored]:
    """Phase 1 over every image, in image order, on ``workers`` threads, with progress."""
    total = len(layout.images)
    step = max(1, total // 50)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="ingest") if workers > 1 else None
    chunk_size = max(1, min(64, total // (workers * 8) or 1))
    queued: deque[Future] = deque()
    stored: list[Stored] = []
    try:
        chunks = _chunks(layout.images.items(), chunk_size)
        while True:
            if pool is None:
                outs = next((_run_chunk(run, c) for c in chunks), None)
            else:
                for c in itertools.islice(chunks, max(0, workers * 4 - len(queued))):
                    queued.append(pool.submit(_run_chunk, run, c))
                outs = queued.popleft().result() if queued else None
            if outs is None:
                break
            for st in outs:
                stored.append(st)
                if progress is not None and (len(stored) % step == 0 or len(stored) == total):
                    progress(len(stored), total)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return stored


def writer_for(assets_dir: Path, images: int) -> InlineWriter | ProcessWriter:
    """A child process stores the files of big imports (see :mod:`hub.datasets.asset_store`)."""
    if images >= PROCESS_WRITER_MIN:
        try:
            return ProcessWriter(assets_dir)
        except OSError as exc:  # no process to spare: write inline, slower but the same result
            log.warning("asset writer process unavailable (%s): writing inline", exc)
    return InlineWriter(assets_dir)
