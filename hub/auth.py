"""Authentication: hashed passwords, API tokens (Bearer) with scopes, sessions, roles and CSRF tokens.

Every page and API route needs a user except the ones in :data:`PUBLIC_ENDPOINTS`. API clients
send ``Authorization: Bearer <token>``; the browser uses the session cookie. Form posts carry
``csrf_token``; JSON calls made from pages with the session cookie carry ``X-CSRF-Token``.
A token's scope (:data:`hub.store.users.SCOPES`) narrows its user's rights: ``read`` only GETs,
``write`` acts as a plain user, ``admin`` (administrators' tokens only) carries all. Failed logins are
rate-limited (:mod:`hub.login_limit`).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from functools import wraps

from flask import current_app, g, redirect, request, session, url_for
from werkzeug.security import check_password_hash, generate_password_hash

from detkit.errors import BadInput, Forbidden, Unauthorized
from hub.db import Database
from hub.store import users as user_store

log = logging.getLogger(__name__)

#: ``api.label_studio_image`` checks the token in its URL itself (Label Studio's labelers have no hub login)
PUBLIC_ENDPOINTS = {"web.login", "api.health", "static", "api.label_studio_image"}
#: routes devices call with their DEVICE token; the views authenticate it themselves (hub.fleet.devices)
DEVICE_ENDPOINTS = {"api.get_artifact", "api.upload_capture"}
MIN_PASSWORD = 8
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def hash_password(password: str) -> str:
    """A salted scrypt hash (werkzeug)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise BadInput(f"password: at least {MIN_PASSWORD} characters")
    return generate_password_hash(password, method="scrypt")


def add_user(database: Database, username: str, password: str, role: str = "user") -> dict:
    """Create a user with a hashed password."""
    return user_store.create_user(database, username, hash_password(password), role)


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def verify_login(database: Database, username: str, password: str) -> dict:
    """The user for a correct username and password; Unauthorized otherwise (same message either way)."""
    row = user_store.find_user_with_hash(database, username or "")
    if row is None or row["disabled"] or not check_password_hash(row["password_hash"], password or ""):
        raise Unauthorized("wrong username or password")
    return user_store.get_user(database, row["id"])


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        session["csrf"] = token
    return token


def _check_csrf(sent: str | None) -> None:
    expected = session.get("csrf")
    # bytes: compare_digest raises TypeError on a str with non-ASCII characters (a hostile header)
    if not expected or not sent or not hmac.compare_digest(str(sent).encode(), expected.encode()):
        raise Forbidden("missing or wrong CSRF token (reload the page and try again)")


def _is_api() -> bool:
    return request.path.startswith("/api/")


def load_user() -> None:
    """``before_request`` hook: sets ``g.user`` and enforces auth and CSRF."""
    g.user = None
    g.token_scope = None  # None: the session (all the user's rights)
    if request.endpoint in DEVICE_ENDPOINTS:
        return None
    database = current_app.extensions["ymir"].database
    header = request.headers.get("Authorization", "")
    via_token = False
    if header.lower().startswith("bearer "):
        user = user_store.user_for_token(database, header[7:].strip())
        if user is None:
            raise Unauthorized("invalid API token")
        g.token_scope = user.pop("token_scope")
        if user["role"] == "admin" and g.token_scope != "admin":  # an admin's read/write token acts as a user
            user = {**user, "role": "user"}
        g.user = user
        via_token = True
    elif session.get("user_id"):
        try:
            user = user_store.get_user(database, int(session["user_id"]))
        except Exception:  # a user deleted while logged in: treat as logged out
            user = None
        if user and not user["disabled"]:
            g.user = user
        else:
            session.clear()
    if request.endpoint is None or request.endpoint in PUBLIC_ENDPOINTS:
        if request.endpoint == "web.login" and request.method not in _SAFE_METHODS:
            _check_csrf(request.form.get("csrf_token"))
        return None
    if g.user is None:
        if _is_api():
            raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'")
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
    if via_token and g.token_scope == "read" and request.method not in _SAFE_METHODS:
        raise Forbidden(f"this API token has scope 'read': it may only read (GET), not {request.method}")
    if request.method not in _SAFE_METHODS and not via_token:
        _check_csrf(request.headers.get("X-CSRF-Token") or request.form.get("csrf_token"))
    return None


def login_session(user: dict) -> None:
    session.clear()
    session["user_id"] = user["id"]
    csrf_token()


def scope_rank(scope: str | None) -> int:
    """How much a scope allows (the session: everything)."""
    return len(user_store.SCOPES) if scope is None else user_store.SCOPES.index(scope)


def require_admin(fn):
    """Route decorator: only admins (an admin's token needs scope ``admin``: its read/write tokens act as a
    user's, see :func:`load_user`)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        if g.user is None or g.user["role"] != "admin":
            raise Forbidden("administrators only")
        return fn(*args, **kwargs)

    wrapper.admin_only = True  # for route listings (tests, docs)
    return wrapper
