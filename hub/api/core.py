"""Health, the current user, API tokens, users (admin) and classes."""

from __future__ import annotations

from flask import g, jsonify

from detkit.errors import Forbidden
from hub import auth
from hub.api import bp
from hub.api.util import body, database, get_field, str_list
from hub.store import classes as class_store
from hub.store import users as user_store


@bp.get("/health")
def health():
    """Liveness and schema check; no auth."""
    database().db.execute("SELECT 1").fetchone()
    return jsonify({"status": "ok"})


@bp.get("/me")
def me():
    return jsonify(g.user)


@bp.get("/tokens")
def list_tokens():
    return jsonify({"tokens": user_store.list_tokens(database(), g.user["id"])})


@bp.post("/tokens")
def create_token():
    data = body()
    label = get_field(data, "label", str, default="")
    scope = get_field(data, "scope", str, default="") or None
    own = g.token_scope  # a token never mints one that may do more than itself
    user = user_store.get_user(database(), g.user["id"])  # the stored role, not the token's view of it
    scope = user_store.check_scope(scope or own or user_store.default_scope(user["role"]), user["role"])
    if own is not None and auth.scope_rank(scope) > auth.scope_rank(own):
        raise Forbidden(f"scope {scope!r}: this token has scope {own!r} and cannot make a stronger one")
    token = user_store.create_token(database(), g.user["id"], label, scope)
    return jsonify({"token": token, "label": label, "scope": scope}), 201


@bp.delete("/tokens/<int:token_id>")
def delete_token(token_id: int):
    user_store.delete_token(database(), g.user["id"], token_id)
    return jsonify({"deleted": token_id})


@bp.get("/users")
@auth.require_admin
def list_users():
    return jsonify({"users": user_store.list_users(database())})


@bp.post("/users")
@auth.require_admin
def create_user():
    data = body()
    user = auth.add_user(
        database(),
        get_field(data, "username", str, required=True),
        get_field(data, "password", str, required=True),
        get_field(data, "role", str, default="user"),
    )
    return jsonify(user), 201


@bp.get("/classes")
def list_classes():
    return jsonify({"classes": class_store.list_classes(database())})


@bp.post("/classes")
def add_class():
    data = body()
    aliases = str_list(data, "aliases") or []
    return jsonify(
        class_store.add_class(database(), get_field(data, "name", str, required=True), aliases)
    ), 201


@bp.get("/classes/<name>")
def get_class(name: str):
    return jsonify(class_store.get_class(database(), name))


@bp.patch("/classes/<name>")
def rename_class(name: str):
    new_name = get_field(body(), "name", str, required=True)
    return jsonify(class_store.rename_class(database(), name, new_name))


@bp.post("/classes/<name>/aliases")
def add_alias(name: str):
    alias = get_field(body(), "alias", str, required=True)
    return jsonify(class_store.add_alias(database(), name, alias)), 201


@bp.delete("/classes/<name>/aliases/<alias>")
def remove_alias(name: str, alias: str):
    class_store.get_class(database(), name)
    class_store.remove_alias(database(), alias)
    return jsonify(class_store.get_class(database(), name))
