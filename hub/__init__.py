"""The ymir-edge hub: Flask app factory (no module-level app).

``create_app(settings)`` opens the workspace, registers the blueprints (``hub.api`` JSON under
``/api/v1``, ``hub.web`` pages), the auth hook and the error handlers, and keeps long-lived
objects in ``app.extensions["ymir"]`` (a :class:`HubState`); ``HubState.close()`` stops them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

log = logging.getLogger(__name__)


@dataclass
class HubState:
    """What a running hub holds: settings, the workspace, the background runner."""

    settings: object
    workspace: object
    background: object
    runner: object = None  # hub.jobs.runner.Runner when this process runs jobs
    closers: list = field(default_factory=list)

    @property
    def database(self):
        return self.workspace.database

    def close(self) -> None:
        """Stop background work and close connections (idempotent)."""
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception:
                log.exception("error while closing the hub")
        self.closers.clear()
        self.background.close()
        self.workspace.close()


def create_app(settings=None, *, create_workspace: bool = False):
    """Build the hub's Flask app for ``settings`` (a :class:`hub.config.Settings`; default: from env)."""
    from flask import Flask

    from hub import auth
    from hub.api import bp as api_bp
    from hub.api.util import IdConverter
    from hub.config import load_settings
    from hub.datasets.background import Background, recover_interrupted
    from hub.errors import register_error_handlers
    from hub.fleet.service import start_fleet
    from hub.store.workspace import Workspace
    from hub.web import bp as web_bp

    settings = settings or load_settings()
    workspace = Workspace.create(settings) if create_workspace else Workspace.open(settings)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.session_secret(),
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(days=7),
        TESTING=settings.testing,
    )
    app.json.sort_keys = False  # keep {"error", "code"} and records in their written order
    hub_state = HubState(settings=settings, workspace=workspace, background=Background())
    recover_interrupted(workspace)
    app.extensions["ymir"] = hub_state
    if settings.run_jobs:
        from hub.jobs.setup import build_runner
        from hub.training import register_builtin_image

        register_builtin_image(workspace.database)
        hub_state.runner = build_runner(settings, workspace.database)
        hub_state.runner.start()
        hub_state.closers.append(hub_state.runner.stop)
        from hub.iterations.service import IterationTicker

        ticker = IterationTicker(workspace)
        ticker.start()
        hub_state.closers.append(ticker.stop)
        if settings.label_studio_sync_s and settings.label_studio_url:
            from hub.labeling.label_studio import SyncTicker

            ls_ticker = SyncTicker(workspace, settings.label_studio_sync_s)
            ls_ticker.start()
            hub_state.closers.append(ls_ticker.stop)
    start_fleet(app, hub_state)  # broker, device ingest, rollouts (when settings.fleet_enabled)
    app.before_request(auth.load_user)
    app.jinja_env.globals["csrf_token"] = auth.csrf_token
    register_error_handlers(app)
    app.url_map.converters["int"] = IdConverter  # before the routes: ids beyond SQLite's range are 404
    app.register_blueprint(api_bp)
    app.register_blueprint(web_bp)
    return app
