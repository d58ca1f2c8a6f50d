"""Real Chromium (headless, Playwright): log in, add classes, create a project, import the sample zip
through the page, watch the background import finish, and see the counts, thumbnails and boxes."""

from __future__ import annotations

import zipfile

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_login_import_sample_zip_and_see_counts(hub_server, chromium_page, sample_zip):
    from hub_helpers import ADMIN_PASSWORD

    server, page = hub_server, chromium_page
    with zipfile.ZipFile(sample_zip) as zf:
        xml = [zf.read(n) for n in zf.namelist() if n.endswith(".xml")]
    expected_boxes = sum(x.count(b"<object>") for x in xml)

    page.goto(f"{server}/projects")
    assert "/login" in page.url  # not logged in: sent to the login page
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    assert page.locator(".flash.error").inner_text() == "wrong username or password"
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/projects")

    page.goto(f"{server}/classes")
    for name in ("circle", "square", "triangle"):
        page.fill("form[action='/classes'] input[name=name]", name)
        page.click("form[action='/classes'] button[type=submit]")
    assert page.locator("#classes tbody tr").count() == 3

    page.goto(f"{server}/projects")
    page.fill("input[name=name]", "shapes")
    page.check("input[name=classes][value=circle]")
    page.click("text=Create project")
    page.wait_for_url("**/projects/1")
    page.click("text=Add dataset")
    page.wait_for_url("**/datasets/import")
    assert page.locator("[data-source=url]").is_hidden()  # the source picker shows one input at a time
    page.set_input_files("input[name=file]", str(sample_zip))
    page.fill("input[name=name]", "sample")
    page.click("#import-form button[type=submit]")
    page.wait_for_url("**/versions/*")

    # the page polls the import's progress and reloads when it is done
    page.wait_for_selector("#count-images", timeout=60_000)
    assert page.locator("#state").inner_text() == "ready"
    assert int(page.locator("#count-images").inner_text()) == 12
    assert int(page.locator("#count-boxes").inner_text()) == expected_boxes
    assert page.locator("#thumbs figure").count() == 12
    page.wait_for_function(
        "() => [...document.querySelectorAll('#thumbs img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("#thumbs svg rect").count() == expected_boxes

    # filter by class through the page
    page.select_option("select[name=class]", "circle")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**class=circle**")
    circle_images = int(page.locator("#class-counts tbody tr:has-text('circle') td").nth(2).inner_text())
    assert page.locator("#thumbs figure").count() == circle_images

    # the dataset list on the project page shows the version
    page.goto(f"{server}/projects/1")
    row = page.locator("#datasets tbody tr").first
    assert "sample" in row.inner_text() and "ready" in row.inner_text() and "12" in row.inner_text()
