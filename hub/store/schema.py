"""Helpers for migrations."""

from __future__ import annotations


def run_script(db, script: str) -> None:
    """Run ``;``-separated statements inside the caller's transaction.

    ``executescript()`` would COMMIT the migration's transaction first, so statements run one by
    one (keep ``;`` out of SQL comments).
    """
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
