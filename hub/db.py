"""The hub's SQLite database: one file in the workspace, WAL, named migrations, one write path.

* Connections are per thread (sqlite3 objects must not cross threads); all share the file, so the
  CLI and a running server can use one workspace at once (WAL + busy timeout).
* Reads go through :meth:`Database.db` (a ``sqlite_utils.Database``); every write goes through
  :meth:`Database.write`, a short ``BEGIN IMMEDIATE`` transaction (sqlite-utils calls inside it nest
  as savepoints), so a failure leaves nothing half-written.
* Migrations are modules ``hub/migrations/m<NNNN>_<name>.py`` each defining ``up(db)``; they run
  once, in name order, and are recorded in ``_migrations``. Schema changes happen only there.
* SQL lives in ``hub/store/`` only; views and jobs call store functions.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import pkgutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

log = logging.getLogger(__name__)


def _connect(path: Path) -> sqlite_utils.Database:
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return sqlite_utils.Database(conn)


class Database:
    """A workspace database file; safe to share between threads (one connection per thread)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite_utils.Database] = []
        self._lock = threading.Lock()

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "db", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.db = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """One short write transaction; nested calls join the outer one."""
        db = self.db
        if db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        for attempt in range(50):  # BEGIN IMMEDIATE can still see SQLITE_BUSY under WAL checkpoints
            try:
                db.conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))
        else:
            raise sqlite3.OperationalError("database stayed locked")
        try:
            yield db
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        else:
            db.conn.execute("COMMIT")

    def migrate(self) -> list[str]:
        """Apply pending migrations in name order; returns the names applied."""
        from hub import migrations as package

        names = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("m"))
        applied: list[str] = []
        with self.write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
            done = {row[0] for row in db.execute("SELECT name FROM _migrations").fetchall()}
            for name in names:
                if name in done:
                    continue
                module = importlib.import_module(f"hub.migrations.{name}")
                module.up(db)
                db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", [name, time.time()])
                applied.append(name)
                log.info("applied migration %s", name)
        return applied

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(Exception):
                    conn.close()
            self._all.clear()
        self._local = threading.local()
