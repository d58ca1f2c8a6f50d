"""The Label Studio labeling backend: a real Label Studio server (its REST API) labels the task's images.

* ``open`` creates a Label Studio project whose labeling config has one ``RectangleLabels`` per task class
  (:func:`ls_format.labeling_config`) and imports one Label Studio task per image: ``data.image`` is a
  token-protected URL of the hub (:func:`image_url`, served by ``hub.api.labeling_studio`` with no login, only
  that task's images), ``data.ymir_sha1`` our asset id (Label Studio gives imported tasks its own ids), and the
  pre-annotations as a prediction (only the task's classes, values clipped into 0-100: recent versions refuse
  anything else). A project half made when something fails is deleted again, and the task is not created.
* ``sync`` pulls the project's JSON export and saves its annotations through ``tasks.apply_imported`` (lenient,
  per-box report: cancelled annotations dropped, ``ground_truth`` else the latest ``updated_at`` taken, a rotated
  box imported as its axis-aligned envelope, unknown classes and zero-size boxes dropped, boxes clipped into the
  image). An unreachable server or an error answer raises :class:`Unavailable` naming the URL and the call
  before anything is saved. :class:`SyncTicker` runs it every ``YMIR_LABEL_STUDIO_SYNC_S`` seconds in the hub.
* ``close`` leaves the project in Label Studio (its history stays there) and notes the task's end in its
  description.

Authentication (``YMIR_LABEL_STUDIO_TOKEN``): a personal access token (a JWT refresh token, Label Studio >= 1.17)
is exchanged at ``/api/token/refresh/`` for a short-lived access token sent as ``Authorization: Bearer``; any
other token is a legacy token, sent as ``Authorization: Token`` (the organization must have legacy tokens
enabled: ``label-studio start --enable-legacy-api-token`` on first start).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time

from detkit.errors import Unavailable
from hub.labeling import ls_format

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0
IMPORT_BATCH = 500
TITLE_MAX = 50  # Label Studio's limit on project titles (and at least 3 characters)


# --- the image URLs Label Studio's labelers load -----------------------------------------------------------
def image_token(settings, task_id: int, sha1: str) -> str:
    """The token in an image URL: an HMAC of (task, image) with the hub's secret key (no state to keep)."""
    key = settings.session_secret().encode()
    return hmac.new(key, f"ymir-label-studio-image:{int(task_id)}:{sha1}".encode(), hashlib.sha256).hexdigest()[:32]


def check_image_token(settings, task_id: int, sha1: str, token: str) -> bool:
    # bytes: compare_digest raises TypeError on a str with non-ASCII characters (a hostile URL)
    return hmac.compare_digest(image_token(settings, task_id, sha1).encode(), str(token or "").encode())


def image_path(task_id: int, sha1: str, token: str) -> str:
    return f"/api/v1/labeling/tasks/{int(task_id)}/ls-images/{token}/{sha1}"


def image_url(ws, task: dict, sha1: str) -> str:
    """Where Label Studio's labelers fetch an image of the task: the hub's public URL (``YMIR_PUBLIC_URL``) and a
    token-protected route that needs no login (hub-relative when no public URL is set)."""
    base = (getattr(ws.settings, "public_url", None) or "").rstrip("/")
    return base + image_path(task["id"], sha1, image_token(ws.settings, task["id"], sha1))


# --- the REST client ----------------------------------------------------------------------------------------
def _is_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def _detail(response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())
        return text[:200] if "<html" not in text.lower() else "(an HTML page)"
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("detail", "validation_errors", "error", "message") if body.get(k)]
        if parts:
            return "; ".join(parts)[:500]
    return str(body)[:500]


class Client:
    """Label Studio's REST API at ``url`` with ``token``; every failure is an :class:`Unavailable` naming it."""

    def __init__(self, url: str | None, token: str | None, *, timeout: float = TIMEOUT_S):
        if not url:
            raise Unavailable("Label Studio backend: no server configured (set YMIR_LABEL_STUDIO_URL to its URL, "
                              "e.g. http://localhost:8080, and YMIR_LABEL_STUDIO_TOKEN to an access token)")
        if not token:
            raise Unavailable(f"Label Studio backend: no access token for {url} (set YMIR_LABEL_STUDIO_TOKEN to a "
                              "personal access token or a legacy token from Account & Settings)")
        import requests  # the hub's dependency; imported here so a hub without this backend never needs it

        self._requests = requests
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self._access: str | None = None

    def _auth(self, refresh: bool = False) -> str:
        if not _is_jwt(self.token):
            return f"Token {self.token}"
        if self._access is None or refresh:
            r = self._send("POST", "/api/token/refresh/", "exchange the personal access token",
                           json={"refresh": self.token}, auth=False)
            self._access = (r.json() or {}).get("access") if r.ok else None
            if not self._access:
                raise Unavailable(f"Label Studio at {self.url} refused the personal access token "
                                  f"(HTTP {r.status_code} at /api/token/refresh/: {_detail(r)}): check "
                                  "YMIR_LABEL_STUDIO_TOKEN")
        return f"Bearer {self._access}"

    def _send(self, method: str, path: str, what: str, *, auth: bool = True, retry: bool = True, **kw):
        headers = {"Authorization": self._auth()} if auth else {}
        try:
            r = self.session.request(method, self.url + path, headers=headers, timeout=self.timeout, **kw)
        except self._requests.RequestException as exc:
            raise Unavailable(f"Label Studio at {self.url} is unreachable ({what}: {type(exc).__name__}: "
                              f"{exc})") from None
        if auth and r.status_code == 401 and retry and _is_jwt(self.token):
            self._auth(refresh=True)  # the access token expired (they live minutes)
            return self._send(method, path, what, retry=False, **kw)
        return r

    def call(self, method: str, path: str, what: str, **kw):
        """One API call; the response on 2xx, else Unavailable with Label Studio's own words."""
        r = self._send(method, path, what, **kw)
        if r.status_code in (401, 403):
            raise Unavailable(f"Label Studio at {self.url} refused the token ({what}: HTTP {r.status_code}: "
                              f"{_detail(r)}): check YMIR_LABEL_STUDIO_TOKEN (a legacy token works only where "
                              "the organization enables legacy tokens)")
        if not r.ok:
            raise Unavailable(f"Label Studio at {self.url}: {what} failed (HTTP {r.status_code} at {path}: "
                              f"{_detail(r)})")
        return r

    def json(self, method: str, path: str, what: str, **kw):
        r = self.call(method, path, what, **kw)
        try:
            return r.json()
        except ValueError:
            raise Unavailable(f"Label Studio at {self.url}: {what}: the answer is not JSON "
                              f"({r.headers.get('content-type')})") from None


def client(settings) -> Client:
    return Client(getattr(settings, "label_studio_url", None), getattr(settings, "label_studio_token", None))


# --- the backend --------------------------------------------------------------------------------------------
def _title(task: dict) -> str:
    title = f"ymir task {task['id']}: {task.get('name') or ''}".strip().rstrip(":")
    return title[:TITLE_MAX]


def _state(task: dict) -> dict:
    state = task.get("backend_state") or {}
    if not state.get("project_id"):
        raise Unavailable(f"labeling task {task['id']}: no Label Studio project is recorded for it "
                          "(backend_state.project_id)")
    return state


class LabelStudioBackend:
    key = "label_studio"

    def open(self, ws, task: dict) -> dict:
        from hub.labeling import tasks

        settings = ws.settings
        api = client(settings)
        if not getattr(settings, "public_url", None):
            raise Unavailable("Label Studio backend: set YMIR_PUBLIC_URL to the hub's URL as Label Studio's "
                              "labelers reach it (their browsers load the images from the hub)")
        config = ls_format.labeling_config(task["classes"])
        project = api.json("POST", "/api/projects/", "create the project",
                           json={"title": _title(task), "label_config": config,
                                 "description": f"Labeling task {task['id']} of the ymir-edge hub "
                                                f"{settings.public_url}: sync or finish it there."})
        pid = project.get("id")
        if not isinstance(pid, int):
            raise Unavailable(f"Label Studio at {api.url}: create the project: no project id in the answer")
        try:
            images = tasks.raw_images(ws.database, task["id"])
            preds = tasks.pre_annotations(ws.database, task, [i["sha1"] for i in images])
            items = [ls_format.task_json(i["sha1"], image_url(ws, task, i["sha1"]), i["width"], i["height"],
                                         preds.get(i["sha1"], []), task["classes"]) for i in images]
            counts = {"tasks": 0, "predictions": 0}
            for start in range(0, len(items), IMPORT_BATCH):
                batch = items[start:start + IMPORT_BATCH]
                done = api.json("POST", f"/api/projects/{pid}/import", f"import tasks into project {pid}",
                                json=batch)
                counts["tasks"] += int(done.get("task_count", len(batch)) or 0)
                counts["predictions"] += int(done.get("prediction_count", 0) or 0)
            if counts["tasks"] != len(items):
                raise Unavailable(f"Label Studio at {api.url}: project {pid} took {counts['tasks']} of "
                                  f"{len(items)} tasks")
        except Exception:
            try:
                api.call("DELETE", f"/api/projects/{pid}/", f"delete the half-made project {pid}")
            except Exception:
                log.warning("Label Studio at %s: could not delete the half-made project %s", api.url, pid)
            raise
        return {"url": api.url, "project_id": pid, "project_url": f"{api.url}/projects/{pid}/data",
                "tasks": counts["tasks"], "predictions": counts["predictions"], "last_sync": None}

    def sync(self, ws, task: dict) -> dict:
        """Pull the project's annotations into the task; Unavailable (nothing saved) when that fails."""
        from hub.labeling import files, tasks
        from hub.store import labeling as store

        state = _state(task)
        api = client(ws.settings)
        pid = state["project_id"]
        r = api.call("GET", f"/api/projects/{pid}/export", f"export the annotations of project {pid}",
                     params={"exportType": "JSON", "download_all_tasks": "false"})
        try:
            entries = ls_format.parse_export(r.content)
        except Exception as exc:
            raise Unavailable(f"Label Studio at {api.url}: the export of project {pid} cannot be read "
                              f"({getattr(exc, 'message', exc)})") from None
        collected = files.labels_from_export(ws, task, entries)
        report = files.apply_export_labels(ws, task, collected, source=f"Label Studio project {pid} at {api.url}",
                                           where="Label Studio task {n} of the export")
        report = {"backend": self.key, "project_id": pid, "project_url": state.get("project_url"), **report}
        fresh = tasks.get_task(ws.database, task["id"])
        new_state = {**(fresh.get("backend_state") or state),
                     "last_sync": {"at": time.time(), "images": report["images"], "boxes": report["boxes"],
                                   "problems": len(report["problems"])}}
        store.update_task(ws.database, task["id"], backend_state=new_state)
        return report

    def close(self, ws, task: dict) -> None:
        """Leave the project (and its annotations) in Label Studio; say in its description how the task ended."""
        state = task.get("backend_state") or {}
        if not state.get("project_id"):
            return None
        try:
            client(ws.settings).call(
                "PATCH", f"/api/projects/{state['project_id']}/", "note the task's end",
                json={"description": f"Labeling task {task['id']} of the ymir-edge hub is {task['state']}: "
                                     "annotations made here are no longer pulled."})
        except Exception as exc:  # the task is finished in the hub either way
            log.warning("labeling task %s: %s", task["id"], getattr(exc, "message", exc))
        return None


BACKEND = LabelStudioBackend()


# --- scheduled sync -----------------------------------------------------------------------------------------
def sync_open_tasks(ws) -> dict[int, str | None]:
    """Sync every open Label Studio task; task id -> None when it synced, else the error (logged, nothing saved)."""
    from hub.labeling import tasks

    out: dict[int, str | None] = {}
    for task in tasks.list_tasks(ws.database, states=("open", "in_progress")):
        if task["backend"] != BACKEND.key:
            continue
        try:
            report = BACKEND.sync(ws, task)
            out[task["id"]] = None
            log.info("labeling task %s: Label Studio sync: %s image(s), %s box(es), %s problem(s)", task["id"],
                     report["images"], report["boxes"], len(report["problems"]))
        except Exception as exc:
            out[task["id"]] = getattr(exc, "message", None) or str(exc)
            log.warning("labeling task %s: Label Studio sync failed, saved labels untouched: %s", task["id"],
                        out[task["id"]])
    return out


class SyncTicker:
    """Calls :func:`sync_open_tasks` every ``interval_s`` seconds until :meth:`stop`."""

    def __init__(self, workspace, interval_s: float) -> None:
        self.workspace = workspace
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ymir-label-studio-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                sync_open_tasks(self.workspace)
            except Exception:
                log.exception("Label Studio sync ticker")
