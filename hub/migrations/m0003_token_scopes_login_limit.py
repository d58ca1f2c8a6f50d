"""API tokens get a scope (read / write / admin) and failed logins are counted (the login rate limit).

Tokens made before scopes existed keep ``admin``: the full rights of their user's role, as before.
"""

from __future__ import annotations

from hub.store.schema import run_script


def up(db) -> None:
    db.execute("ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin'")
    run_script(
        db,
        """
        CREATE TABLE login_failures (
            key TEXT NOT NULL,
            at REAL NOT NULL
        );
        CREATE INDEX login_failures_key_at ON login_failures (key, at);
        """,
    )
