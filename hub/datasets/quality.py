"""Image quality scores computed after import, when something first needs them (analysis).

Import verifies each image's structure without decoding its pixels (``detkit.imaging.inspect_image``)
and keeps YMIR's ``<image_quality>`` when the annotation gives one. The score of
:mod:`detkit.quality` needs the pixels, so it is computed here, once per asset, by the first
analysis of a version that lacks it, and stored with the asset: later versions holding the same
image reuse it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from detkit.errors import BadInput, YmirError
from detkit.imaging import decode_image
from detkit.quality import image_quality
from hub.datasets.ingest import asset_path
from hub.store import assets as store

log = logging.getLogger(__name__)

MAX_PIXELS = 100_000_000
BATCH = 512


def _score(assets_dir: Path, sha1: str) -> tuple[str, float | None]:
    try:
        data = asset_path(assets_dir, sha1).read_bytes()
        return sha1, image_quality(decode_image(data, MAX_PIXELS, where=sha1).grey)
    except (OSError, BadInput) as exc:  # a missing or undecodable asset stays unknown, never fails the caller
        log.warning("no quality score for asset %s: %s", sha1, exc)
        return sha1, None


def _fetch(asset_store, sha1s: list[str]) -> None:
    try:
        asset_store.ensure_local(sha1s)
    except YmirError as exc:  # scored as far as the files go; the rest stays unknown (see _score)
        log.warning("could not fetch every asset to score: %s", exc.message)


def score_missing(database, assets_dir: Path, version_id: int,
                  progress: Callable[[int, int], None] | None = None, workers: int | None = None,
                  asset_store=None) -> int:
    """Compute and store the quality of the version's images that have none; returns how many got one.

    With ``asset_store`` (an :class:`hub.storage.AssetStore`) files its cache lacks are fetched first.
    """
    todo = store.assets_missing_quality(database, version_id)
    if not todo:
        return 0
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    scored = 0
    with ThreadPoolExecutor(workers, thread_name_prefix="quality") as pool:
        for start in range(0, len(todo), BATCH):
            batch = todo[start:start + BATCH]
            if asset_store is not None:
                _fetch(asset_store, batch)
            pairs = [(s, q) for s, q in pool.map(lambda s: _score(assets_dir, s), batch) if q is not None]
            store.set_asset_quality(database, pairs)
            scored += len(pairs)
            if progress is not None:
                progress(start + len(batch), len(todo))
    log.info("scored the quality of %d images of version %s", scored, version_id)
    return scored
