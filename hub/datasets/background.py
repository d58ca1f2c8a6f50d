"""Run dataset imports in the background: each one is an internal ``import`` job row.

:func:`start_background_import` queues the job; the hub's runner (or ``ymir-hub worker``) runs it,
and progress lands in both the job row and the version row, so pages and the API poll the
database. Also here: saving uploads, the request entry point shared by pages and API, and the
start-up sweep of imports whose process died. :class:`Background` is a small thread pool for
other short hub work.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from detkit.errors import BadInput
from hub.config import Settings
from hub.datasets import service
from hub.jobs.kinds import InternalKind, register
from hub.store import datasets as ds_store
from hub.store.workspace import Workspace

log = logging.getLogger(__name__)


class Background:
    """A small fixed pool of worker threads running queued hub work, oldest first.

    A fixed pool (not a thread per task) bounds the SQLite connections the work opens (one per
    thread) and keeps imports from fighting over the CPU; a queued task's version says "queued".
    """

    def __init__(self, workers: int = 2) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._size = max(1, workers)
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._closed = False

    def _worker(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            name, fn, args, kwargs = task
            try:
                fn(*args, **kwargs)
            except Exception:  # the task has already recorded its failure in its row
                log.debug("background task %s failed", name, exc_info=True)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def submit(self, name: str, fn: Callable[..., object], *args, **kwargs) -> None:
        """Queue ``fn(*args, **kwargs)``; its errors are logged (the function records them)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the hub is shutting down")
            self._pending += 1
            if len(self._workers) < self._size:
                t = threading.Thread(target=self._worker, name=f"ymir-background-{len(self._workers)}", daemon=True)
                self._workers.append(t)
                t.start()
        self._queue.put((name, fn, args, kwargs))

    def active(self) -> int:
        """Tasks queued or running."""
        with self._lock:
            return self._pending

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every queued task is done; True when none is left."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Finish queued work (up to ``timeout``), then stop the workers."""
        if not self.wait(timeout):
            log.warning("%d background task(s) still running at shutdown", self.active())
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for _ in workers:
            self._queue.put(None)
        for t in workers:
            t.join(0.5)


def start_background_import(state, version: dict) -> dict:
    """Queue an internal ``import`` job for ``version``; returns the job row."""
    from hub.store import jobs as jobs_store

    return jobs_store.create_job(
        state.database, kind="import", category="internal", params={"version_id": version["id"]},
        project_id=version["project_id"], created_by=version.get("created_by"),
        message=f"import into {version.get('group_name', 'dataset')} v{version.get('number', '')}",
    )


def _run_import_job(ctx, job: dict, progress) -> dict:
    ws = Workspace.attach(ctx.settings, ctx.database)

    def forward(done: int, total: int, message: str = "") -> None:
        progress(done / total if total else 0.0, message)

    return service.run_import(ws, job["params"]["version_id"], forward)


register("import", InternalKind(run=_run_import_job))


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
    ``importing`` forever. Imports of live processes (a CLI beside the server) are left alone; when none
    is running, the files the killed imports had written (no ``assets`` row) are removed.
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
        if not any(v["state"] == "importing" for v in ds_store.list_versions(ws.database)):
            _remove_orphan_files(ws)  # a running import's files have no rows yet: only sweep when none runs
    return failed


def _remove_orphan_files(ws: Workspace) -> int:
    """Delete asset files no ``assets`` row refers to (what a killed import had written); returns how many."""
    from hub.store import assets as asset_store

    root = Path(ws.settings.assets_dir)
    files = {p.name: p for p in root.rglob("*") if p.is_file() and len(p.name) == 40} if root.is_dir() else {}
    known = asset_store.known_sha1s(ws.database, files)
    removed = 0
    for sha1, path in files.items():
        if sha1 not in known:
            try:
                path.unlink()
                removed += 1
            except OSError as exc:
                log.warning("could not remove orphan asset file %s: %s", path, exc)
    if removed:
        log.warning("removed %d orphan asset file(s) left by interrupted imports", removed)
    return removed
