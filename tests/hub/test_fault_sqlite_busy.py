"""Faults: SQLite busy under concurrent writers (several processes and threads on one hub.db) loses no write."""

from __future__ import annotations

import multiprocessing as mp
import threading

from hub.db import Database
from hub.store import classes as class_store

PROCS, THREADS, WRITES = 3, 3, 40


def _writer(path: str, proc: int) -> None:
    database = Database(path)

    def run(thread: int) -> None:
        for i in range(WRITES):
            class_store.add_class(database, f"c{proc}_{thread}_{i}", [f"a{proc}_{thread}_{i}"])

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    database.close()


def test_concurrent_writers_lose_no_write(workspace):
    path = str(workspace.settings.home / "hub.db")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, p)) for p in range(PROCS)]
    for p in procs:
        p.start()
    # the test's own process reads all the while, as pages do
    seen = 0
    while any(p.is_alive() for p in procs):
        seen = max(seen, len(class_store.list_classes(workspace.database)))
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    names = {c["name"] for c in class_store.list_classes(workspace.database)}
    expected = {f"c{p}_{t}_{i}" for p in range(PROCS) for t in range(THREADS) for i in range(WRITES)}
    assert expected <= names and len(expected) == PROCS * THREADS * WRITES
    aliases = {a for c in class_store.list_classes(workspace.database) for a in c.get("aliases", [])}
    assert {f"a{p}_{t}_{i}" for p in range(PROCS) for t in range(THREADS) for i in range(WRITES)} <= aliases
    assert workspace.database.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
