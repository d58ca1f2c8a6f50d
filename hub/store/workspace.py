"""The hub workspace on disk: folders (see :class:`hub.config.Settings`) plus the migrated database."""

from __future__ import annotations

import logging

from detkit.errors import NotFound
from hub.config import Settings
from hub.db import Database

log = logging.getLogger(__name__)


class Workspace:
    """A workspace folder and its database; the CLI and a running server may open one at once."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.database = Database(settings.db_path)

    @classmethod
    def create(cls, settings: Settings) -> Workspace:
        """Make the folders and the database (idempotent)."""
        settings.home.mkdir(parents=True, exist_ok=True)
        for d in settings.layout_dirs():
            d.mkdir(parents=True, exist_ok=True)
        ws = cls(settings)
        applied = ws.database.migrate()
        if applied:
            log.info("workspace %s: applied %s", settings.home, ", ".join(applied))
        return ws

    @classmethod
    def open(cls, settings: Settings) -> Workspace:
        """An existing workspace (pending migrations applied); NotFound if ``init`` never ran."""
        if not settings.db_path.exists():
            raise NotFound(f"no workspace at {settings.home} (run: ymir-hub --home {settings.home} init)")
        return cls.create(settings)

    @classmethod
    def attach(cls, settings: Settings, database: Database) -> Workspace:
        """A workspace over an already open database (job functions get one from their context)."""
        ws = cls.__new__(cls)
        ws.settings, ws.database = settings, database
        return ws

    def close(self) -> None:
        self.database.close()
