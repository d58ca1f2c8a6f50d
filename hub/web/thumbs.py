"""Thumbnails: made once per asset and cached under the workspace (``cache/thumbs``)."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from hub.config import Settings

THUMB_SIZE = 320


def original_path(settings: Settings, sha1: str) -> Path:
    """The stored image file of an asset (from the asset store's local folder or cache)."""
    return settings.asset_store.local_path(sha1)  # NotFound when the store lacks it


def thumbnail_path(settings: Settings, sha1: str) -> Path:
    """The cached JPEG thumbnail of an asset, made on first request."""
    out = settings.thumbs_dir / sha1[:2] / f"{sha1}.jpg"
    if out.exists():
        return out
    src = original_path(settings, sha1)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    with Image.open(src) as im:
        im.draft("RGB", (THUMB_SIZE, THUMB_SIZE))  # JPEG: decode at reduced size
        im = im.convert("RGB")
        im.thumbnail((THUMB_SIZE, THUMB_SIZE))
        im.save(tmp, "JPEG", quality=82)
    os.replace(tmp, out)  # atomic: concurrent requests never see half a file
    return out
