"""Real Chromium (headless, Playwright): open the Diagnosis page for a prediction version, see the mAP
table and the charts drawn on their canvases; open the images filtered by label; the analysis page."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

@pytest.fixture
def server(hub_server):
    return hub_server


@pytest.fixture
def page(chromium_page):
    return chromium_page


def _drawn(page, selector: str) -> bool:
    """Whether Chart.js drew on the canvas (a chart instance exists and the canvas has pixels)."""
    return page.eval_on_selector(
        selector,
        "c => !!window.Chart && !!Chart.getChart(c) && c.width > 0 && c.height > 0",
    )


def test_diagnosis_page_shows_map_table_and_charts(server, page, api, tmp_path):
    from hub_helpers import ADMIN_PASSWORD
    from test_diagnosis_helpers import pred_zip, scenes, setup_project, upload

    setup_project(api)
    gt, pred = scenes(8, seed=7)
    v = upload(api, pred_zip(tmp_path / "p.zip", gt, pred, model="tiny"), name="test")
    expected = api.get(f"/api/v1/versions/{v['id']}/evaluation").get_json()

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server}/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/projects")

    page.goto(f"{server}/projects/1")
    page.click("aside.side >> text=Diagnosis")
    page.wait_for_url("**/projects/1/diagnosis")
    page.check(f"input[name=pred][value='{v['id']}']")
    page.fill("input[name=iou]", "0.5")
    page.click("#diagnosis-form button[type=submit]")
    page.wait_for_selector("#map-table")
    table = page.locator("#map-table").inner_text()
    assert "mAP@0.5 (COCO)" in table and f"{expected['mAP50']:.3f}" in table and "tiny" in table
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('sweep-chart'))")
    assert _drawn(page, "#sweep-chart")
    assert page.locator("canvas.pr-chart").count() == len(expected["per_class"])
    assert _drawn(page, "canvas.pr-chart")

    page.click("#map-table >> text=view TP / FP / FN")
    page.wait_for_selector("#label-counts")
    page.select_option("#label-filter select[name=label]", "FP")
    page.click("#label-filter button[type=submit]")
    page.wait_for_url("**label=FP**")
    shown = page.locator("#thumbs figure").count()
    assert shown > 0 and page.locator("svg.boxes rect.label-FP").count() == expected["fp"]

    page.click("aside.side >> text=Dataset analysis")
    page.wait_for_selector("#totals")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.querySelector('canvas.hist-chart'))")
    assert _drawn(page, "canvas.hist-chart")
    assert not errors, errors
