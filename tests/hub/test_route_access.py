"""Every route of the URL map, walked as anonymous, user and admin, checked against a hand-kept table.

A new route that is missing from :data:`ACCESS` fails :func:`test_every_route_has_a_rule`, so nobody adds a
route without saying who may call it. Plus the web/API hardening around it: token scopes, the login rate
limit, session cookie flags and CSRF.
"""

from __future__ import annotations

import re

import pytest
from hub_helpers import ADMIN_PASSWORD, csrf_from

from hub import auth
from hub.store import users as user_store

PUBLIC = {"api.health", "api.label_studio_image", "static", "web.login"}
DEVICE = {"api.get_artifact", "api.upload_capture"}  # the device's own token, checked by the views
ADMIN = {
    "api.add_image", "api.create_user", "api.edit_device", "api.link_image", "api.list_users",
    "api.provision_device", "api.publish_image", "api.remove_device", "api.review_algorithm",
    "api.rotate_device_token", "api.set_public",
    "web.add_user", "web.images_add", "web.images_admin", "web.package_publish", "web.provision_device_page",
    "web.remove_device_page", "web.rotate_token_page", "web.set_public", "web.users",
}
USER = {
    "api.add_alias", "api.add_class", "api.archive_project", "api.cancel_job", "api.cancel_labeling_task",
    "api.compare_analyses", "api.compare_evaluations", "api.convert_model", "api.copy_image",
    "api.create_deployment", "api.create_evaluation", "api.create_labeling_task", "api.create_project",
    "api.create_token", "api.delete_token", "api.device_command", "api.device_metrics", "api.device_predictions",
    "api.download_model", "api.download_package", "api.export_labeling_task", "api.export_version",
    "api.filter_version", "api.finish_labeling_task", "api.fleet_info", "api.fleet_public_key",
    "api.get_algorithm", "api.get_class", "api.get_command", "api.get_deployment", "api.get_device",
    "api.get_guideline", "api.get_job", "api.get_labeling_task", "api.get_model", "api.get_project",
    "api.get_version", "api.import_dataset", "api.import_labeling_file", "api.import_model_route", "api.infer",
    "api.iteration_history", "api.job_history", "api.job_logs", "api.labeling_image", "api.labeling_images",
    "api.list_algorithms", "api.list_classes", "api.list_datasets", "api.list_deployments", "api.list_devices",
    "api.list_images", "api.list_jobs", "api.list_labeling_tasks", "api.list_mining", "api.list_model_packages",
    "api.list_models", "api.list_projects", "api.list_tokens", "api.list_versions", "api.me", "api.merge_version",
    "api.mine", "api.mined_version", "api.mining_algorithms", "api.next_iteration", "api.next_labeling_image",
    "api.openapi_document",
    "api.prepare_mining", "api.public_datasets", "api.publish_algorithm", "api.remove_alias",
    "api.remove_device_algorithm", "api.rename_class", "api.request_public", "api.rollback_deployment",
    "api.run_iteration_step", "api.sample_balance", "api.sample_version", "api.save_labeling_image",
    "api.show_iteration", "api.skip_iteration_step", "api.split_version", "api.start_analysis",
    "api.start_iteration", "api.start_mining", "api.sync_labeling_task", "api.train", "api.try_algorithm",
    "api.update_project", "api.upload_guideline", "api.version_analysis", "api.version_assets",
    "api.version_evaluation", "api.version_labels",
    "web.account", "web.add_alias", "web.add_class", "web.algorithm_page", "web.algorithms_page",
    "web.analysis_page", "web.archive_project", "web.asset_image", "web.asset_thumb", "web.classes",
    "web.create_project", "web.create_token", "web.deploy_page", "web.deployment", "web.deployment_page",
    "web.device_algorithm_action", "web.device_page", "web.diagnosis_page", "web.edit_project",
    "web.import_form", "web.import_submit", "web.index", "web.iteration_next", "web.iteration_page",
    "web.iteration_run_step", "web.iteration_skip_step", "web.iteration_start", "web.job_cancel", "web.job_page",
    "web.jobs_page", "web.labeling_create", "web.labeling_guideline", "web.labeling_task", "web.labeling_tasks",
    "web.logout", "web.mined_version", "web.mining_page", "web.mining_prepare", "web.mining_start",
    "web.model_convert", "web.model_page", "web.models_import", "web.models_page", "web.project",
    "web.project_section", "web.projects", "web.publish_algorithm_page", "web.rename_class",
    "web.request_public_page", "web.review_page", "web.rollback_page", "web.training_form", "web.training_submit",
    "web.try_page", "web.version", "web.version_diagnosis", "web.version_op",
}
ACCESS = {**{e: "public" for e in PUBLIC}, **{e: "device" for e in DEVICE}, **{e: "admin" for e in ADMIN},
          **{e: "user" for e in USER}}


def _calls(app):
    """(endpoint, method, url) for every rule and method, with dummy values in the URL."""
    out = []
    for rule in app.url_map.iter_rules():
        url = re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>",
                     lambda m: "1" if m.group(1) in ("int", "float") else "x", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule.endpoint, method, url))
    return sorted(out)


def test_every_route_has_a_rule(app):
    endpoints = {r.endpoint for r in app.url_map.iter_rules()}
    assert endpoints - ACCESS.keys() == set(), "routes without an access rule in tests/hub/test_route_access.py"
    assert ACCESS.keys() - endpoints == set(), "rules for routes that no longer exist"
    # the table and the code agree on who is public/device/admin
    assert auth.PUBLIC_ENDPOINTS == PUBLIC and auth.DEVICE_ENDPOINTS == DEVICE
    marked = {e for e, f in app.view_functions.items() if getattr(f, "admin_only", False)}
    assert marked == ADMIN


@pytest.fixture
def tokens(workspace):
    db = workspace.database
    admin = user_store.get_user_by_name(db, "admin")
    auth.add_user(db, "alice", "alice-pass-123", "user")
    alice = user_store.get_user_by_name(db, "alice")
    user_store.create_token(db, admin["id"], "bait")  # id 1: what DELETE /tokens/1 may remove
    return {"user": user_store.create_token(db, alice["id"], "walk"),
            "admin": user_store.create_token(db, admin["id"], "walk")}


def _send(client, method, url, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kw = {"json": {}} if method in ("POST", "PUT", "PATCH") and url.startswith("/api/") else {}
    return client.open(url, method=method, headers=headers, **kw)


def test_walk_every_route_as_anonymous_user_and_admin(app, tokens):
    client = app.test_client()
    wrong = []
    for endpoint, method, url in _calls(app):
        rule = ACCESS[endpoint]
        if endpoint == "static":
            continue
        anon = _send(client, method, url)
        if rule in ("user", "admin"):
            ok = anon.status_code == 401 if url.startswith("/api/") else (
                anon.status_code == 302 and "/login" in anon.headers["Location"])
            if not ok:
                wrong.append(f"anonymous {method} {url} ({endpoint}): {anon.status_code}")
        elif rule == "device" and anon.status_code != 401:
            wrong.append(f"anonymous {method} {url} ({endpoint}): {anon.status_code}, expected 401")
        for who in ("user", "admin"):
            r = _send(client, method, url, tokens[who])
            if r.status_code >= 500:
                wrong.append(f"{who} {method} {url} ({endpoint}): {r.status_code} {r.get_data(as_text=True)[:120]}")
            if rule == "admin" and who == "user":
                if r.status_code != 403:
                    wrong.append(f"user {method} {url} ({endpoint}): {r.status_code}, expected 403")
            elif rule in ("user", "admin") and r.status_code in (401, 403):
                wrong.append(f"{who} {method} {url} ({endpoint}): {r.status_code} {r.get_data(as_text=True)[:120]}")
    assert not wrong, "\n".join(wrong)


def test_token_scopes(app, workspace):
    db = workspace.database
    admin = user_store.get_user_by_name(db, "admin")
    auth.add_user(db, "bob", "bob-pass-1234", "user")
    bob = user_store.get_user_by_name(db, "bob")
    c = app.test_client()

    def call(method, url, token, **kw):
        return c.open(url, method=method, headers={"Authorization": f"Bearer {token}"}, **kw)

    read = user_store.create_token(db, admin["id"], "r", "read")
    assert call("GET", "/api/v1/projects", read).status_code == 200
    r = call("POST", "/api/v1/projects", read, json={"name": "p"})
    assert r.status_code == 403 and "scope 'read'" in r.get_json()["error"]
    assert call("GET", "/api/v1/users", read).status_code == 403  # an admin's read token is no admin
    write = user_store.create_token(db, admin["id"], "w", "write")
    assert call("POST", "/api/v1/projects", write, json={"name": "p"}).status_code == 201
    assert call("GET", "/api/v1/users", write).status_code == 403
    assert call("GET", "/api/v1/me", write).get_json()["role"] == "user"
    full = user_store.create_token(db, admin["id"], "a", "admin")
    assert call("GET", "/api/v1/users", full).status_code == 200
    # a token cannot mint a stronger one; a user cannot hold an admin token
    assert call("POST", "/api/v1/tokens", write, json={"scope": "admin"}).status_code == 403
    made = call("POST", "/api/v1/tokens", write, json={"label": "x"}).get_json()
    assert made["scope"] == "write"
    assert call("POST", "/api/v1/tokens", full, json={"scope": "read"}).get_json()["scope"] == "read"
    bobs = user_store.create_token(db, bob["id"], "b")
    assert call("GET", "/api/v1/tokens", bobs).get_json()["tokens"][0]["scope"] == "write"
    r = call("POST", "/api/v1/tokens", bobs, json={"scope": "admin"})
    assert r.status_code == 400 and "administrators" in r.get_json()["error"]
    assert call("POST", "/api/v1/tokens", bobs, json={"scope": "root"}).status_code == 400


def test_old_tokens_keep_their_rights_after_the_migration(workspace):
    db = workspace.database
    cols = {r[1]: r[4] for r in db.db.execute("PRAGMA table_info(api_tokens)").fetchall()}
    assert cols["scope"] == "'admin'"  # rows made before scopes: all their user's rights


def _login(c, username, password, addr="10.0.0.1"):
    page = c.get("/login").get_data(as_text=True)
    return c.post("/login", data={"username": username, "password": password, "csrf_token": csrf_from(page)},
                  environ_base={"REMOTE_ADDR": addr})


def test_login_rate_limit_per_address_and_per_user(app):
    c = app.test_client()
    limit = app.extensions["ymir"].settings.login_max_failures
    for _ in range(limit):
        assert _login(c, "admin", "wrong-one").status_code == 401
    r = _login(c, "admin", ADMIN_PASSWORD)  # even the right password waits now
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert b"too many failed logins" in r.data
    # another address for the same user name: still limited (per user); another user from a fresh address: fine
    assert _login(c, "admin", ADMIN_PASSWORD, addr="10.0.0.2").status_code == 429
    auth.add_user(app.extensions["ymir"].database, "carol", "carol-pass-123", "user")
    assert _login(c, "carol", "carol-pass-123", addr="10.0.0.3").status_code == 302
    # the first address is blocked for every user name
    assert _login(c, "carol", "carol-pass-123", addr="10.0.0.1").status_code == 429


def test_a_good_login_clears_the_count(app):
    c = app.test_client()
    limit = app.extensions["ymir"].settings.login_max_failures
    for _ in range(limit - 1):
        assert _login(c, "admin", "wrong-one").status_code == 401
    assert _login(c, "admin", ADMIN_PASSWORD).status_code == 302
    for _ in range(limit - 1):
        assert _login(c, "admin", "wrong-one").status_code == 401
    assert _login(c, "admin", ADMIN_PASSWORD).status_code == 302


def test_session_cookie_is_httponly_and_samesite(app):
    c = app.test_client()
    r = _login(c, "admin", ADMIN_PASSWORD)
    cookie = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_every_form_post_without_csrf_is_refused(app, tokens):
    """Session users (the browser) must send the CSRF token on every non-GET route."""
    c = app.test_client()
    assert _login(c, "admin", ADMIN_PASSWORD).status_code == 302
    wrong = []
    for endpoint, method, url in _calls(app):
        if method == "GET" or ACCESS[endpoint] in ("public", "device"):
            continue
        r = c.open(url, method=method)
        if r.status_code != 403:
            wrong.append(f"{method} {url} ({endpoint}): {r.status_code}")
    assert not wrong, "\n".join(wrong)
