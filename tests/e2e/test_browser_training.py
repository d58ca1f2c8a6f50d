"""In a real headless Chromium: log in, start a training from the page, watch it finish, see the model."""

from __future__ import annotations

import shutil
import threading

import pytest
from hub_helpers import shapes_hub

from hub import create_app
from hub.config import load_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory):
    from werkzeug.serving import make_server

    home = tmp_path_factory.mktemp("ws")
    shapes_hub(home, sets=(("train", 12, 5), ("val", 4, 6)))
    app = create_app(load_settings(home, env={}))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    app.extensions["ymir"].close()


@pytest.fixture(scope="module")
def page(hub_url):
    playwright = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium") and not __import__("os").path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (scripts/setup.sh installs it as root)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page()
        pg.goto(f"{hub_url}/login")
        pg.fill("input[name=username]", "admin")
        pg.fill("input[name=password]", "password1")
        pg.click("form button")
        yield pg
        browser.close()


def test_train_from_the_page_and_see_the_model(page, hub_url):
    page.goto(f"{hub_url}/projects/1/training")
    page.click("#balance-button")
    page.wait_for_selector("#balance tbody tr")
    assert page.locator("#balance tbody tr").count() == 3
    page.fill("#hp_epochs", "1")
    page.fill("#hp_input_size", "128")
    page.click("#start-training")
    page.wait_for_url("**/jobs/*")
    page.wait_for_selector("#job-state:has-text('done')", timeout=240_000)
    assert page.locator("#history-chart").count() == 1
    page.click("a:has-text('train v1')")
    page.wait_for_selector("#stages")
    assert "best" in page.locator("#stages").inner_text()
    page.goto(f"{hub_url}/projects/1/models")
    assert page.locator("#training-jobs .job-state").first.inner_text() == "done"
