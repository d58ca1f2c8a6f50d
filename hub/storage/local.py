"""The default asset store: the workspace's ``assets/`` folder (``<sha1[-2:]>/<sha1>``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from detkit.errors import NotFound
from hub.datasets.asset_store import asset_path_str, store_asset


class LocalStore:
    key = "local"

    def __init__(self, settings):
        self.local_dir = Path(settings.assets_dir)

    def describe(self) -> str:
        return f"workspace folder {self.local_dir}"

    def _path(self, sha1: str) -> str:
        return asset_path_str(self.local_dir, sha1)

    def check(self) -> None:
        return None

    def put(self, sha1: str, data: bytes) -> bool:
        return store_asset(self.local_dir, sha1, data) is not None

    def publish(self, sha1s: Iterable[str]) -> list[str]:
        return []  # the import engine wrote them here: stored already

    def exists(self, sha1: str) -> bool:
        return os.path.isfile(self._path(sha1))

    def open(self, sha1: str) -> BinaryIO:
        return open(self.local_path(sha1), "rb")

    def local_path(self, sha1: str) -> Path:
        path = Path(self._path(sha1))
        if not path.is_file():
            raise NotFound(f"asset file {sha1} is missing from the workspace")
        return path

    def ensure_local(self, sha1s: Iterable[str]) -> None:
        return None  # every stored asset is local; readers report a missing file themselves

    def discard(self, sha1s: Iterable[str]) -> None:
        for sha1 in sha1s:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(sha1))
