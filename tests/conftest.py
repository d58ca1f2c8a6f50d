"""Shared fixtures: a real temp workspace, the hub app, logged-in clients, a sample zip."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "hub"))  # hub_helpers, for hub and e2e tests

from hub_helpers import ADMIN_PASSWORD, csrf_from  # noqa: E402


@pytest.fixture
def hub_settings(tmp_path):
    """Settings for a fresh workspace folder (no env involved)."""
    from hub.config import load_settings

    return load_settings(tmp_path / "ws", env={}, testing=True, secret_key="test-secret")


@pytest.fixture
def workspace(hub_settings):
    """An initialised workspace with an admin user."""
    from hub import auth
    from hub.store.workspace import Workspace

    ws = Workspace.create(hub_settings)
    auth.add_user(ws.database, "admin", ADMIN_PASSWORD, "admin")
    yield ws
    ws.close()


@pytest.fixture
def app(workspace):
    from hub import create_app

    app = create_app(workspace.settings)
    yield app
    app.extensions["ymir"].close()


@pytest.fixture
def client(app):
    """A test client logged in as admin through the login form; ``client.csrf`` holds the token."""
    c = app.test_client()
    page = c.get("/login").get_data(as_text=True)
    r = c.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf_from(page)})
    assert r.status_code == 302
    c.csrf = csrf_from(c.get("/projects").get_data(as_text=True))
    return c


@pytest.fixture
def token(workspace):
    from hub.store import users as user_store

    admin = user_store.get_user_by_name(workspace.database, "admin")
    return user_store.create_token(workspace.database, admin["id"], "tests")


@pytest.fixture
def api(app, token):
    """A test client sending the admin's Bearer token."""

    class Api:
        def __init__(self):
            self.c = app.test_client()
            self.h = {"Authorization": f"Bearer {token}"}

        def get(self, url, **kw):
            return self.c.get(url, headers=self.h, **kw)

        def post(self, url, **kw):
            return self.c.post(url, headers=self.h, **kw)

        def patch(self, url, **kw):
            return self.c.patch(url, headers=self.h, **kw)

        def put(self, url, **kw):
            return self.c.put(url, headers=self.h, **kw)

        def delete(self, url, **kw):
            return self.c.delete(url, headers=self.h, **kw)

    return Api()


@pytest.fixture(scope="session")
def sample_zip(tmp_path_factory):
    """A 12-image YMIR-layout VOC zip of shape scenes (classes circle, square, triangle)."""
    from detkit.synth import write_sample_zip

    return write_sample_zip(tmp_path_factory.mktemp("sample") / "sample.zip", images=12, seed=3)


@pytest.fixture
def hub_server(app):
    """The hub app served on a free loopback port (werkzeug ``make_server`` in a thread); yields its URL."""
    import threading

    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(10)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def chromium_page():
    """A Playwright page in headless system Chromium (skipped when Chromium is not installed)."""
    import shutil

    if not shutil.which(CHROMIUM):
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        context.close()
        browser.close()
