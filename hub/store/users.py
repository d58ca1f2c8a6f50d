"""Users and API tokens (only token hashes are stored)."""

from __future__ import annotations

import hashlib
import secrets
import time

from detkit.errors import BadInput, Conflict, NotFound
from hub.db import Database

ROLES = ("admin", "user")
TOKEN_PREFIX = "ymir_"
#: API token scopes, weakest first: ``read`` may only GET; ``write`` does what its user may except admin
#: routes; ``admin`` carries all of its user's rights (only administrators' tokens may have it)
SCOPES = ("read", "write", "admin")


def default_scope(role: str) -> str:
    """The scope a token gets when none is asked for: all its user's rights."""
    return "admin" if role == "admin" else "write"


def check_scope(scope: str, role: str) -> str:
    """``scope`` if a user of ``role`` may hold a token of it; BadInput otherwise."""
    if scope not in SCOPES:
        raise BadInput(f"scope {scope!r}: expected one of {', '.join(SCOPES)}")
    if scope == "admin" and role != "admin":
        raise BadInput("scope 'admin': only administrators' tokens may have it (use read or write)")
    return scope


def token_hash(token: str) -> str:
    """sha256 of a token: what the database keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def _public(row: dict | None) -> dict | None:
    if row is None:
        return None
    return {k: v for k, v in row.items() if k != "password_hash"}


def create_user(database: Database, username: str, password_hash: str, role: str = "user") -> dict:
    """Add a user; ``username`` must be new. Returns the user without its hash."""
    username = username.strip()
    if not username or len(username) > 64 or any(c.isspace() for c in username):
        raise BadInput(f"username {username!r}: 1-64 characters, no spaces")
    if role not in ROLES:
        raise BadInput(f"role {role!r}: expected one of {', '.join(ROLES)}")
    with database.write() as db:
        if db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            raise Conflict(f"user {username!r} already exists")
        cur = db.execute(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
            [username, password_hash, role, time.time()],
        )
        user_id = cur.lastrowid
    return get_user(database, user_id)


def get_user(database: Database, user_id: int) -> dict:
    rows = list(database.db.query("SELECT * FROM users WHERE id = ?", [user_id]))
    if not rows:
        raise NotFound(f"user {user_id} not found")
    return _public(rows[0])


def find_user_with_hash(database: Database, username: str) -> dict | None:
    """The user row including ``password_hash`` (for login only), or None."""
    rows = list(database.db.query("SELECT * FROM users WHERE username = ?", [username.strip()]))
    return rows[0] if rows else None


def get_user_by_name(database: Database, username: str) -> dict:
    row = find_user_with_hash(database, username)
    if row is None:
        raise NotFound(f"user {username!r} not found")
    return _public(row)


def list_users(database: Database) -> list[dict]:
    return [_public(r) for r in database.db.query("SELECT * FROM users ORDER BY id")]


def set_password(database: Database, user_id: int, password_hash: str) -> None:
    with database.write() as db:
        db.execute("UPDATE users SET password_hash = ? WHERE id = ?", [password_hash, user_id])


def count_users(database: Database) -> int:
    return database.db.execute("SELECT count(*) FROM users").fetchone()[0]


def create_token(database: Database, user_id: int, label: str = "", scope: str | None = None) -> str:
    """Make a new API token for a user (``scope`` one of :data:`SCOPES`, default all the user's rights);
    the plain token is returned once and never stored."""
    user = get_user(database, user_id)
    scope = check_scope(scope or default_scope(user["role"]), user["role"])
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with database.write() as db:
        db.execute(
            "INSERT INTO api_tokens (user_id, token_hash, label, scope, created_at) VALUES (?, ?, ?, ?, ?)",
            [user_id, token_hash(token), label, scope, time.time()],
        )
    return token


def user_for_token(database: Database, token: str) -> dict | None:
    """The enabled user owning ``token`` with the token's scope as ``token_scope``, or None."""
    rows = list(
        database.db.query(
            "SELECT u.*, t.id AS token_id, t.last_used_at AS token_used, t.scope AS token_scope "
            "FROM api_tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.token_hash = ? AND u.disabled = 0",
            [token_hash(token)],
        )
    )
    if not rows:
        return None
    row = rows[0]
    now = time.time()
    if (row.pop("token_used") or 0) < now - 60:  # a write per request would contend with imports
        with database.write() as db:
            db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", [now, row["token_id"]])
    row.pop("token_id")
    return _public(row)


def list_tokens(database: Database, user_id: int) -> list[dict]:
    return list(
        database.db.query(
            "SELECT id, label, scope, created_at, last_used_at FROM api_tokens WHERE user_id = ? ORDER BY id",
            [user_id],
        )
    )


def delete_token(database: Database, user_id: int, token_id: int) -> None:
    with database.write() as db:
        cur = db.execute("DELETE FROM api_tokens WHERE id = ? AND user_id = ?", [token_id, user_id])
        if cur.rowcount == 0:
            raise NotFound(f"token {token_id} not found")


def count_login_failures(database: Database, keys: list[str], since: float) -> dict[str, int]:
    """Failed logins per key (``addr:...`` / ``user:...``) since ``since``."""
    marks = ",".join("?" * len(keys))
    rows = database.db.execute(
        f"SELECT key, count(*) FROM login_failures WHERE key IN ({marks}) AND at >= ? GROUP BY key",
        [*keys, since],
    ).fetchall()
    return {k: n for k, n in rows}


def oldest_login_failure(database: Database, key: str, since: float) -> float | None:
    row = database.db.execute(
        "SELECT min(at) FROM login_failures WHERE key = ? AND at >= ?", [key, since]).fetchone()
    return row[0] if row else None


def add_login_failure(database: Database, keys: list[str], at: float, forget_before: float) -> None:
    """Count one failed login under each key; failures older than ``forget_before`` are dropped."""
    with database.write() as db:
        db.execute("DELETE FROM login_failures WHERE at < ?", [forget_before])
        for k in keys:
            db.execute("INSERT INTO login_failures (key, at) VALUES (?, ?)", [k, at])


def clear_login_failures(database: Database, keys: list[str]) -> None:
    with database.write() as db:
        for k in keys:
            db.execute("DELETE FROM login_failures WHERE key = ?", [k])
