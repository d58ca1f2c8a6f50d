"""Run dataset imports in the background of the hub process.

One small module on purpose: the hub's job runner (``hub/jobs``) can replace it by internal job
rows by changing :func:`start_background_import` only. Until then a daemon thread per task runs
the import; progress lands in the version row, so pages and the API poll the database, not this
object. Also here: saving uploads, the request entry point shared by pages and API, and the
start-up sweep of imports whose process died.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from detkit.errors import BadInput
from hub.config import Settings
from hub.datasets import service
from hub.store import datasets as ds_store
from hub.store.workspace import Workspace

log = logging.getLogger(__name__)


class Background:
    """Threads running long hub work; :meth:`close` waits for them a little, then lets them go."""

    def __init__(self) -> None:
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def submit(self, name: str, fn: Callable[..., object], *args, **kwargs) -> threading.Thread:
        """Start ``fn(*args, **kwargs)`` in a daemon thread; its errors are logged (the function records them)."""

        def _run() -> None:
            try:
                fn(*args, **kwargs)
            except Exception:  # the task has already recorded its failure in its row
                log.debug("background task %s failed", name, exc_info=True)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=_run, name=f"ymir-{name}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return thread

    def active(self) -> int:
        with self._lock:
            return len(self._threads)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every running task; True when none is left."""
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)
        return self.active() == 0

    def close(self, timeout: float = 5.0) -> None:
        if not self.wait(timeout):
            log.warning("%d background task(s) still running at shutdown", self.active())


def start_background_import(state, version: dict) -> None:
    """Run ``run_import`` for ``version`` on the hub's background runner."""
    state.background.submit(f"import-{version['id']}", service.run_import, state.workspace, version["id"])


def save_upload(settings: Settings, storage) -> Path:
    """Save an uploaded zip (a werkzeug ``FileStorage``) under the workspace's tmp folder."""
    import secrets

    filename = (getattr(storage, "filename", "") or "").strip()
    if not filename:
        raise BadInput("upload: no file was sent (form field 'file')")
    if not filename.lower().endswith(".zip"):
        raise BadInput(f"upload {filename!r}: only .zip files are accepted")
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    dest = settings.tmp_dir / f"upload-{secrets.token_hex(8)}.zip"
    storage.save(dest)
    return dest


def import_request(state, project, fields: dict, upload=None, user_id: int | None = None) -> dict:
    """Start a background import from a page form or an API call; returns the new version.

    ``fields``: ``source`` (zip|url|path|copy|public; ``zip`` needs ``upload``), ``value``,
    ``name``, ``unknown``.
    """
    kind = (fields.get("source") or ("zip" if upload is not None else "")).strip()
    ws = state.workspace
    saved = None
    value = fields.get("value")
    display = None
    if kind == "zip":
        if upload is None:
            raise BadInput("source zip: upload the file as multipart form field 'file'")
        saved = save_upload(ws.settings, upload)
        value, display = str(saved), upload.filename
    try:
        version = service.start_import(
            ws,
            project,
            kind=kind,
            value=value,
            name=fields.get("name") or None,
            unknown=fields.get("unknown") or "stop",
            user_id=user_id,
            temp_upload=saved is not None,
            display=display,
        )
    except BaseException:
        if saved is not None:
            saved.unlink(missing_ok=True)
        raise
    start_background_import(state, version)
    return version


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def recover_interrupted(ws: Workspace) -> list[int]:
    """Mark ``failed`` the imports whose process (on this host) is gone; returns their version ids.

    Called when a hub starts: an import killed with its process would otherwise stay
    ``importing`` forever. Imports of live processes (a CLI beside the server) are left alone.
    """
    host = socket.gethostname()
    failed = []
    for v in ds_store.list_versions(ws.database):
        src = v["source"]
        if v["state"] != "importing" or src.get("host") != host or not isinstance(src.get("pid"), int):
            continue
        if src["pid"] == os.getpid() or _alive(src["pid"]):
            continue
        ds_store.fail_version(ws.database, v["id"], "interrupted: the process running this import stopped")
        failed.append(v["id"])
    if failed:
        log.warning("marked %d interrupted import(s) failed: %s", len(failed), failed)
    return failed
