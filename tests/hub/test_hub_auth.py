"""Users and auth: login page, hashed passwords, Bearer tokens, roles, CSRF on form posts."""

from __future__ import annotations

from hub_helpers import ADMIN_PASSWORD, csrf_from

from hub import auth
from hub.store import users as user_store


def test_passwords_are_stored_hashed(workspace):
    row = user_store.find_user_with_hash(workspace.database, "admin")
    assert row["password_hash"].startswith("scrypt:") and ADMIN_PASSWORD not in row["password_hash"]


def test_every_page_needs_login_except_login_and_health(app):
    c = app.test_client()
    for url in ("/", "/projects", "/classes", "/account", "/projects/1", "/versions/1", "/deployment"):
        r = c.get(url)
        assert r.status_code == 302 and "/login" in r.headers["Location"], url
    assert c.get("/login").status_code == 200
    assert c.get("/api/v1/health").get_json() == {"status": "ok"}
    r = c.get("/api/v1/projects")
    assert r.status_code == 401 and r.get_json()["code"] == "unauthorized"


def test_login_with_wrong_password_fails(app):
    c = app.test_client()
    token = csrf_from(c.get("/login").get_data(as_text=True))
    r = c.post("/login", data={"username": "admin", "password": "wrong-one", "csrf_token": token})
    assert r.status_code == 401 and b"wrong username or password" in r.data
    assert c.get("/projects").status_code == 302


def test_login_form_needs_its_csrf_token(app):
    c = app.test_client()
    c.get("/login")
    r = c.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 403


def test_login_then_logout(client):
    assert client.get("/projects").status_code == 200
    assert client.post("/logout", data={"csrf_token": client.csrf}).status_code == 302
    assert client.get("/projects").status_code == 302


def test_form_posts_without_csrf_are_refused(client):
    r = client.post("/classes", data={"name": "cat"})
    assert r.status_code == 403
    assert client.post("/classes", data={"name": "cat", "csrf_token": client.csrf}).status_code == 302
    # JSON calls made with the session cookie need the header too
    assert client.post("/api/v1/classes", json={"name": "dog"}).status_code == 403
    r = client.post("/api/v1/classes", json={"name": "dog"}, headers={"X-CSRF-Token": client.csrf})
    assert r.status_code == 201


def test_bearer_tokens(api, app, workspace):
    assert api.get("/api/v1/me").get_json()["username"] == "admin"
    c = app.test_client()
    r = c.get("/api/v1/me", headers={"Authorization": "Bearer ymir_not-a-token"})
    assert r.status_code == 401 and r.get_json() == {"error": "invalid API token", "code": "unauthorized"}
    made = api.post("/api/v1/tokens", json={"label": "second"}).get_json()["token"]
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {made}"}).status_code == 200
    tokens = api.get("/api/v1/tokens").get_json()["tokens"]
    assert {t["label"] for t in tokens} == {"tests", "second"}
    second = next(t for t in tokens if t["label"] == "second")
    assert api.delete(f"/api/v1/tokens/{second['id']}").status_code == 200
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {made}"}).status_code == 401


def test_roles(api, app, workspace):
    assert api.post("/api/v1/users", json={"username": "eve", "password": "eve-pass-12"}).status_code == 201
    eve_token = user_store.create_token(workspace.database, user_store.get_user_by_name(workspace.database, "eve")["id"])
    c = app.test_client()
    h = {"Authorization": f"Bearer {eve_token}"}
    r = c.get("/api/v1/users", headers=h)
    assert r.status_code == 403 and r.get_json()["code"] == "forbidden"
    assert c.get("/api/v1/projects", headers=h).status_code == 200
    # an ordinary user logging in sees no admin pages
    page = c.get("/login").get_data(as_text=True)
    c.post("/login", data={"username": "eve", "password": "eve-pass-12", "csrf_token": csrf_from(page)})
    assert c.get("/users").status_code == 403


def test_short_passwords_are_refused(workspace):
    import pytest

    from detkit.errors import BadInput

    with pytest.raises(BadInput, match="at least 8"):
        auth.add_user(workspace.database, "x", "short")
