"""Resumable artifact downloads from the hub: HTTP Range, device token, size cap, sha256 check.

Bytes land in ``{dest}.part``; a later attempt (the same process after a dropped connection, or a
restarted agent) asks for ``Range: bytes={have}-`` and appends. A complete file is renamed to
``dest``; :func:`verify_sha256` checks it (the store reports ``verifying`` in between).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import requests

from detkit.errors import BadModel, TooLarge, Unavailable

log = logging.getLogger(__name__)
_CHUNK = 1 << 16


def _hash_existing(path: Path) -> tuple[hashlib._Hash, int]:
    h = hashlib.sha256()
    n = 0
    if path.exists():
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                n += len(chunk)
    return h, n


def download(
    url: str,
    dest: Path,
    sha256: str,
    size: int,
    *,
    token: str = "",
    timeout: float = 30.0,
    max_bytes: int = 2 * 1024**3,
    attempts: int = 3,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``); the size must be ``size``.

    Raises :class:`TooLarge` over ``max_bytes`` or the announced size, :class:`BadModel` when the
    hub refuses (401/403/404), :class:`Unavailable` when the hub cannot be reached after
    ``attempts`` (the partial file is kept for the next try).
    """
    if dest.exists():
        return dest
    if size > max_bytes:
        raise TooLarge(f"artifact {sha256[:12]}: {size} bytes is over the {max_bytes} byte limit")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    last_error = ""
    for attempt in range(1, attempts + 1):
        have = part.stat().st_size if part.exists() else 0
        if size and have > size:
            part.unlink()
            have = 0
        if size and have == size:
            break
        req_headers = dict(headers)
        if have:
            req_headers["Range"] = f"bytes={have}-"
        try:
            with requests.get(url, headers=req_headers, stream=True, timeout=(5.0, timeout)) as resp:
                if resp.status_code == 416 and have:  # our partial file is stale: start over
                    part.unlink()
                    continue
                if resp.status_code in (401, 403, 404):
                    raise BadModel(f"artifact {url}: hub answered {resp.status_code}")
                resp.raise_for_status()
                mode = "ab" if have and resp.status_code == 206 else "wb"
                if mode == "wb":
                    have = 0
                with open(part, mode) as f:
                    for chunk in resp.iter_content(_CHUNK):
                        have += len(chunk)
                        if have > max_bytes or (size and have > size):
                            f.close()
                            part.unlink(missing_ok=True)
                            raise TooLarge(f"artifact {sha256[:12]}: more than the announced {size or max_bytes} bytes")
                        f.write(chunk)
                        if progress:
                            progress(have, size)
                    f.flush()
                    os.fsync(f.fileno())
            if not size or have == size:
                break
            last_error = f"connection closed at {have} of {size} bytes"
        except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                requests.exceptions.InvalidURL) as exc:
            raise BadModel(f"artifact url {url!r} is not usable: {exc}") from None
        except requests.RequestException as exc:  # connection, timeout, 5xx, broken chunking: retry
            last_error = str(exc)
        log.warning("download %s attempt %d/%d: %s", url, attempt, attempts, last_error)
        time.sleep(min(2.0, 0.2 * attempt))
    else:
        raise Unavailable(f"artifact {url}: download failed after {attempts} attempts ({last_error})")
    have = part.stat().st_size if part.exists() else 0
    if size and have != size:
        raise Unavailable(f"artifact {url}: got {have} of {size} bytes")
    os.replace(part, dest)
    return dest


def verify_sha256(path: Path, sha256: str) -> None:
    """:class:`BadModel` (and the file removed) unless ``path`` hashes to ``sha256``."""
    h, _ = _hash_existing(path)
    if h.hexdigest() != sha256:
        path.unlink(missing_ok=True)
        raise BadModel(f"artifact {sha256[:12]}: sha256 mismatch (downloaded {h.hexdigest()[:12]})")
