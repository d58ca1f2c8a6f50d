"""In a real headless Chromium: log in, deploy an algorithm to a device from the Deployment page,
watch the rollout row go healthy (a real agent process, a real Mosquitto)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hub" / "fleet"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fixtures_mqtt
from fixtures_mqtt import mosquitto  # noqa: E402,F401
from fleet_helpers import (  # noqa: E402
    AgentProc,
    Api,
    HubServer,
    make_fleet_app,
    package,
    wait_until,
    write_agent_config,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.mqtt, pytest.mark.slow]


def test_deploy_from_the_page_and_see_it_go_healthy(tmp_path, mosquitto):  # noqa: F811
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed")
    app, token = make_fleet_app(tmp_path, mosquitto.url)
    server = HubServer(app).start()
    api = Api(server.url, token)
    agent = None
    try:
        dev = api.ok(api.post("/api/v1/devices", json={"id": "cam-9", "name": "Yard", "project": "edge"}), 201)
        with open(package(tmp_path / "pkg"), "rb") as f:
            algo = api.ok(api.post("/api/v1/algorithms", files={"file": ("tiny.zip", f)}, data={"title": "Shapes"}),
                          201)
        cfg, port = write_agent_config(tmp_path / "agent", "cam-9", dev["token"], mosquitto.url, server.url)
        agent = AgentProc(tmp_path / "agent", cfg, port)
        wait_until(lambda: api.ok(api.get("/api/v1/devices/cam-9"))["online"], 30, what="the device online")
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin-pass-123")
            page.click("form button")
            page.click("nav.topnav a:has-text('Deployment')")
            page.wait_for_selector("#devices tr[data-device='cam-9']")
            assert "online" in page.locator("#devices tr[data-device='cam-9']").inner_text()
            page.select_option("#deploy select[name=algorithm_id]", str(algo["id"]))
            page.select_option("#deploy select[name=target]", "device:cam-9")
            page.fill("#deploy input[name=conf]", "0.2")
            page.click("#deploy button")
            page.wait_for_url("**/deployment/deployments/*")
            page.wait_for_selector("#rows tr[data-device='cam-9'] .row-state:has-text('healthy')", timeout=60_000)
            page.wait_for_selector("#dep-state:has-text('completed')", timeout=30_000)
            page.click("#rows a:has-text('Yard')")
            page.wait_for_selector("#algorithms tr[data-algorithm='tiny']")
            assert "healthy" in page.locator("#algorithms tr[data-algorithm='tiny']").inner_text()
            assert page.locator("#metrics-chart").count() == 1
            assert not errors, errors  # the rollout poller and the metrics chart ran without script errors
            browser.close()
    finally:
        if agent:
            agent.stop()
        server.stop()
        app.extensions["ymir"].close()
