"""Dataset import: validate a request, make the version row, ingest in the background, store the result.

``start_import`` checks the request and creates the version (state ``importing``);
``run_import`` does the work (the CLI calls it in the foreground with a tqdm bar, the server in
:mod:`hub.datasets.background`). Files are read by :mod:`hub.datasets.sources` and
:mod:`hub.datasets.ingest`; rows are written in one transaction through :mod:`hub.store`.
A failed import leaves its version ``failed`` with no rows of its own and no orphan asset files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from detkit.errors import BadInput, NotFound, StorageFull, YmirError
from hub.config import UNKNOWN_STRATEGIES, Settings
from hub.store import assets as asset_store
from hub.store import classes as class_store
from hub.store import datasets as ds_store
from hub.store import projects as project_store
from hub.store.workspace import Workspace

log = logging.getLogger(__name__)

SOURCE_KINDS = ("zip", "url", "path", "copy", "public")
Progress = Callable[[int, int, str], None]


def limits_for(settings: Settings):
    """The ingest limits derived from the hub's settings."""
    from hub.datasets.sources import Limits

    return Limits(
        max_zip_bytes=settings.max_upload_bytes,
        url_max_bytes=settings.max_upload_bytes,
        max_files=settings.max_images * 2 + 100,
        url_block_private=settings.url_block_private,
    )


def _default_name(kind: str, value: str, database) -> str:
    if kind in ("copy", "public"):
        return ds_store.get_version(database, int(value))["group_name"]
    stem = Path(value.rstrip("/").split("?")[0]).name
    for suffix in (".zip", ".ZIP"):
        stem = stem.removesuffix(suffix)
    return stem[:100] or "dataset"


def validate_source(ws: Workspace, kind: str, value) -> str:
    """Check a source early (before a version row exists); returns its normalised value."""
    settings = ws.settings
    if kind not in SOURCE_KINDS:
        raise BadInput(f"source kind {kind!r}: expected one of {', '.join(SOURCE_KINDS)}")
    if value in (None, ""):
        raise BadInput(f"source {kind}: a value is required")
    value = str(value).strip()
    if kind == "zip" and not Path(value).is_file():
        raise BadInput(f"zip {value!r} not found")
    if kind == "url":
        if not settings.allow_url_import:
            raise BadInput("import from URLs is turned off on this hub (YMIR_ALLOW_URL_IMPORT=0)")
        if not value.lower().startswith(("http://", "https://")):
            raise BadInput(f"url {value[:200]!r}: only http and https are allowed")
    if kind == "path":
        from hub.datasets.sources import resolve_shared_path

        resolve_shared_path(value, settings.sharing_dir)
    if kind in ("copy", "public"):
        if not value.isdigit():
            raise BadInput(f"source {kind}: expected a dataset version id, got {value!r}")
        src = ds_store.require_ready(ws.database, int(value))
        if kind == "public" and not src["public"]:
            raise BadInput(f"dataset version {value} is not a public dataset")
    return value


def start_import(
    ws: Workspace,
    project: str | int,
    *,
    kind: str,
    value,
    name: str | None = None,
    unknown: str = "stop",
    user_id: int | None = None,
    temp_upload: bool = False,
    display: str | None = None,
) -> dict:
    """Validate an import request and create its version (state ``importing``); returns the version.

    ``temp_upload`` marks a zip the hub saved from an upload: it is deleted when the import ends.
    """
    if unknown not in UNKNOWN_STRATEGIES:
        raise BadInput(f"unknown-class strategy {unknown!r}: expected one of {', '.join(UNKNOWN_STRATEGIES)}")
    proj = project_store.find_project(ws.database, project)
    if proj["archived"]:
        raise BadInput(f"project {proj['name']!r} is archived")
    value = validate_source(ws, kind, value)
    group_name = (name or "").strip() or _default_name(kind, display or value, ws.database)
    group = ds_store.get_or_create_group(ws.database, proj["id"], group_name)
    # the pid of the process that will run the import: a later start can tell an interrupted one
    source = {"kind": kind, "value": value, "unknown": unknown, "pid": os.getpid(), "host": socket.gethostname()}
    if display:
        source["display"] = display
    if temp_upload:
        source["temp_upload"] = True
    parents = [int(value)] if kind in ("copy", "public") else []
    return ds_store.create_version(
        ws.database,
        group["id"],
        source=source,
        operation="copy" if parents else "import",
        parent_ids=parents,
        created_by=user_id,
    )


class _Throttled:
    """Writes progress to the version row at most every ``interval`` seconds, and forwards it.

    Reading files is shown as 0-90%; the rows are stored in one transaction afterwards, whose
    progress other connections could not see anyway, so that phase is only forwarded (CLI bar).
    """

    READ_SHARE = 0.9

    def __init__(self, ws: Workspace, version_id: int, forward: Progress | None, interval: float = 0.5):
        self.ws, self.version_id, self.forward, self.interval = ws, version_id, forward, interval
        self.last = 0.0

    def __call__(self, done: int, total: int, message: str = "reading files") -> None:
        if self.forward:
            self.forward(done, total, message)
        now = time.monotonic()
        if now - self.last >= self.interval or (total and done >= total):
            self.last = now
            frac = self.READ_SHARE * (done / total) if total else 0.0
            ds_store.set_progress(self.ws.database, self.version_id, frac, f"{message} {done}/{total}")

    def storing(self, done: int, total: int) -> None:
        if self.forward:
            self.forward(done, total, "storing")


def _report_dict(report) -> dict:
    if dataclasses.is_dataclass(report):
        return dataclasses.asdict(report)
    return dict(report)


def _resolver(ws: Workspace) -> Callable[[str], str | None]:
    names = class_store.name_map(ws.database)

    def resolve(name: str) -> str | None:
        try:
            return names.get(class_store.normalize(name))
        except BadInput:
            return None

    return resolve


def _copy_version(ws: Workspace, version: dict, progress: _Throttled) -> dict:
    src_id = int(version["source"]["value"])
    src = ds_store.require_ready(ws.database, src_id)
    progress(0, src["images"], "copying")
    with ws.database.write() as db:
        asset_store.start_pick(db)
        asset_store.pick_where(db, src_id)
        asset_store.copy_picked(db, version["id"])
        report = {
            "format": "copy",
            "copied_from": src_id,
            "images": src["images"],
            "boxes_per_class": {k: v["boxes"] for k, v in src["class_counts"]["gt"].items()},
            "pred_boxes_per_class": {k: v["boxes"] for k, v in src["class_counts"]["pred"].items()},
            "skipped": [],
        }
        ds_store.finish_version(db, version["id"], report)
    progress(src["images"], src["images"], "done")
    return report


def _ingest_version(ws: Workspace, version: dict, progress: _Throttled) -> dict:
    from hub.datasets.ingest import ingest_source
    from hub.datasets.sources import Source

    settings = ws.settings
    source = version["source"]
    limits = limits_for(settings)
    store = settings.asset_store
    store.check()  # an unreachable store fails the import before it reads a file
    # zips are read in place: no temporary copy of every file
    result = ingest_source(
        Source(source["kind"], source["value"]),
        sharing_dir=settings.sharing_dir,
        tmp_dir=settings.tmp_dir,
        assets_dir=settings.assets_dir,
        resolve_class=_resolver(ws),
        unknown=source.get("unknown", "stop"),
        limits=limits,
        progress=progress,
    )
    published: list[str] = []
    try:
        # the engine wrote new files into the local folder; the store holds them before rows say so
        published = store.publish(a.sha1 for a in result.assets)
        report = _report_dict(result.report)
        report["images"] = len(result.assets)
        if len(result.assets) > settings.max_images:
            raise BadInput(f"{len(result.assets)} images exceed this hub's limit of {settings.max_images}")
        added = list(report.get("added_classes") or [])
        total = len(result.assets)
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            progress.storing(done[0], total)

        # one transaction: new classes, assets, membership, annotations, counts (all or nothing)
        with ws.database.write() as db:
            if added:
                class_store.ensure_classes(ws.database, added)
            names = class_store.name_map(ws.database)
            ids = class_store.ids_by_main_name(ws.database)

            cache: dict[str, int | None] = {}

            def class_id_of(name: str) -> int | None:
                if name in cache:  # a handful of names, looked up once per box
                    return cache[name]
                try:
                    main = names.get(class_store.normalize(name))
                except BadInput:
                    main = None
                cache[name] = ids.get(main) if main else None
                return cache[name]

            asset_store.insert_version_rows(db, version["id"], result.assets, class_id_of, step)
            ds_store.finish_version(db, version["id"], report)
        return report
    except BaseException:
        _remove_orphans(ws, result.created_files)
        if published:  # objects this import added that no asset row refers to
            known = asset_store.known_sha1s(ws.database, published)
            store.discard([s for s in published if s not in known])
        raise


def _remove_orphans(ws: Workspace, created_files) -> None:
    """Delete asset files this import created that no asset row refers to."""
    paths = [Path(p) for p in created_files or []]
    if not paths:
        return
    known = asset_store.known_sha1s(ws.database, [p.stem for p in paths])
    removed = 0
    for p in paths:
        if p.stem not in known:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed += 1
    log.info("removed %d orphan asset file(s)", removed)


def _disk_full(ws: Workspace, version_id: int, exc: Exception) -> StorageFull | None:
    """A clear error for a full disk or quota (the import's files are already removed), else None."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = exc.filename or ws.settings.home
    elif isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        where = ws.settings.db_path
    else:
        return None
    log.error("import of version %s: disk full at %s", version_id, where)
    return StorageFull(f"import of version {version_id}: no space left on the disk holding {where}; nothing of "
                       "this import was kept: free space (or raise the quota) and import again")


def run_import(ws: Workspace, version_id: int, progress: Progress | None = None) -> dict:
    """Do the import of an ``importing`` version; returns its summary (see :func:`summary`).

    On failure the version is marked ``failed`` with the error, and the error is raised again.
    """
    version = ds_store.get_version(ws.database, version_id)
    if version["state"] != "importing":
        raise BadInput(f"dataset version {version_id} is {version['state']}, not waiting for an import")
    tracker = _Throttled(ws, version_id, progress)
    source = version["source"]
    try:
        if source["kind"] in ("copy", "public"):
            _copy_version(ws, version, tracker)
        else:
            _ingest_version(ws, version, tracker)
    except YmirError as exc:
        ds_store.fail_version(ws.database, version_id, exc.message, {"error_code": exc.code})
        raise
    except Exception as exc:
        full = _disk_full(ws, version_id, exc)
        if full is not None:
            ds_store.fail_version(ws.database, version_id, full.message, {"error_code": full.code})
            raise full from None
        log.exception("import of version %s failed", version_id)
        ds_store.fail_version(ws.database, version_id, f"internal error: {type(exc).__name__}: {exc}")
        raise
    finally:
        if source.get("temp_upload"):
            with contextlib.suppress(FileNotFoundError):
                Path(source["value"]).unlink()
    return summary(ds_store.get_version(ws.database, version_id))


def summary(version: dict) -> dict:
    """What ``dataset import --json`` and the API print for a version."""
    report = version.get("report") or {}
    return {
        "version_id": version["id"],
        "dataset": version["group_name"],
        "number": version["number"],
        "project_id": version["project_id"],
        "state": version["state"],
        "progress": version["progress"],
        "images": version["images"],
        "boxes": version["gt_boxes"],
        "pred_boxes": version["pred_boxes"],
        "boxes_per_class": {k: v["boxes"] for k, v in version["class_counts"]["gt"].items()},
        "skipped": report.get("skipped", []),
        "error": version.get("error"),
    }


def get_public_version(ws: Workspace, version_id: int) -> dict:
    v = ds_store.get_version(ws.database, version_id)
    if not v["public"]:
        raise NotFound(f"public dataset version {version_id} not found")
    return v
