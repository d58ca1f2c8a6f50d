"""The asset store protocol and its registry (one key, one module, one row in :data:`STORES`).

Assets are content-addressed by sha1. Every store keeps a local folder in the workspace laid out
as ``<sha1[-2:]>/<sha1>`` (:func:`hub.datasets.ingest.asset_path`): the ``local`` store *is* that
folder; a remote store uses it as a read-through cache, so code that needs a file path (jobs,
thumbnails, exports, hashing) asks :meth:`AssetStore.local_path` / :meth:`AssetStore.ensure_local`
and then reads the file as before.

Writes: the import engine writes new assets into the local folder (it is fast there, and a failed
import deletes them again); :meth:`AssetStore.publish` then makes them durable in the store before
the import commits its rows. Single writes (edge captures) use :meth:`AssetStore.put`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


@runtime_checkable
class AssetStore(Protocol):
    key: str
    #: the workspace folder with the files :meth:`local_path` returns (``assets/``)
    local_dir: Path

    def describe(self) -> str:
        """Where the assets live, for messages (``workspace folder ...``, ``s3://bucket/prefix``)."""

    def check(self) -> None:
        """Raise :class:`~detkit.errors.Unavailable` (with why) when the store cannot be reached."""

    def put(self, sha1: str, data: bytes) -> bool:
        """Store one asset (and its local file); True if the store did not have it before."""

    def publish(self, sha1s: Iterable[str]) -> list[str]:
        """Make assets whose local files exist durable in the store; the sha1s this call added.

        All or nothing: on failure what this call added is removed again and
        :class:`~detkit.errors.Unavailable` is raised.
        """

    def exists(self, sha1: str) -> bool:
        """Whether the store holds the asset."""

    def open(self, sha1: str) -> BinaryIO:
        """The asset's bytes, opened for reading (:class:`~detkit.errors.NotFound` if missing)."""

    def local_path(self, sha1: str) -> Path:
        """A readable local file with the asset's bytes (fetched into the cache when needed)."""

    def ensure_local(self, sha1s: Iterable[str]) -> None:
        """:meth:`local_path` for many assets at once (a remote store fetches them in parallel)."""

    def discard(self, sha1s: Iterable[str]) -> None:
        """Remove assets from the store (what a failed import added); missing ones are ignored."""


#: key -> (module, class, the SDK it needs or None)
STORES: dict[str, tuple[str, str, str | None]] = {
    "local": ("hub.storage.local", "LocalStore", None),
    "s3": ("hub.storage.s3", "S3Store", "boto3"),
}


def unavailable_reason(key: str) -> str | None:
    """None when the store ``key`` can be used here, else why not."""
    if key not in STORES:
        return f"unknown asset storage {key!r}: use one of {', '.join(STORES)}"
    sdk = STORES[key][2]
    if sdk and importlib.util.find_spec(sdk) is None:
        return f"asset storage {key!r} unavailable: pip install 'ymir-edge[{key}]'"
    return None


def open_store(settings) -> AssetStore:
    """The store the settings select (validated by :func:`hub.config.load_settings`)."""
    module, cls, _ = STORES[settings.storage]
    return getattr(importlib.import_module(module), cls)(settings)
