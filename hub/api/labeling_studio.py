"""Label Studio's side of the labeling API: token-protected image files for its tasks (routes register on import).

Label Studio's labelers' browsers load each task's ``data.image`` from the hub without a hub login: the URL
carries a token made from the task id and the image (``hub.labeling.label_studio.image_token``), so it opens
that image of that task only. A wrong token is 403, an image not in the task 404.
"""

from __future__ import annotations

import re

from flask import send_file

from detkit.errors import Forbidden, NotFound
from hub.api import bp
from hub.api.util import database, state

_SHA1 = re.compile(r"^[0-9a-f]{40}$")


@bp.get("/labeling/tasks/<int:task_id>/ls-images/<token>/<sha1>")
def label_studio_image(task_id: int, token: str, sha1: str):
    from hub.labeling import label_studio
    from hub.store import labeling as store
    from hub.web.thumbs import original_path

    settings = state().settings
    if not _SHA1.match(sha1) or not label_studio.check_image_token(settings, task_id, sha1, token):
        raise Forbidden("wrong or expired image link (Label Studio task images need the link the hub made)")
    row = store.task_image(database(), task_id, sha1)  # NotFound: not an image of this task
    try:
        path = original_path(settings, sha1)  # the asset store's file (a remote store: its local cache)
    except FileNotFoundError:
        raise NotFound(f"image {sha1}: its file is missing from the asset store") from None
    return send_file(path, mimetype=f"image/{row['format'] or 'jpeg'}", max_age=3600)
