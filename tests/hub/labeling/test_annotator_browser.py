"""Real Chromium (headless, Playwright) in the built-in annotator: draw a box with mouse drags, change its
class with a number key, resize it by a corner, reload (the box is still there, in image pixels through the
API too), mark an image "no objects", finish (the new version holds the box as ground truth); accept one
pre-annotation and reject another with the keyboard."""

from __future__ import annotations

import time

import pytest
from hub_helpers import ADMIN_PASSWORD, make_zip
from test_diagnosis_helpers import pred_zip, setup_project, upload

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def page(chromium_page, hub_server):
    errors: list[str] = []
    chromium_page.on("pageerror", lambda exc: errors.append(str(exc)))
    chromium_page.set_viewport_size({"width": 1400, "height": 900})
    chromium_page.goto(f"{hub_server}/login")
    chromium_page.fill("input[name=username]", "admin")
    chromium_page.fill("input[name=password]", ADMIN_PASSWORD)
    chromium_page.click("button[type=submit]")
    chromium_page.wait_for_url(f"{hub_server}/projects")
    dialogs: list[str] = []

    def answer(dialog):   # "finish with images not done?" and the like: yes
        dialogs.append(dialog.message)
        dialog.accept()

    chromium_page.on("dialog", answer)
    chromium_page.dialogs = dialogs
    yield chromium_page
    assert not errors, errors


def _client(page, x: float, y: float) -> tuple[float, float]:
    """Where image pixel (x, y) is on the page (the annotator's own view transform)."""
    p = page.evaluate("([x, y]) => ymirAnnotator.current.toClient(x, y)", [x, y])
    return p["x"], p["y"]


def _drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A real mouse drag between two image pixels."""
    page.mouse.move(*_client(page, *start))
    page.mouse.down()
    sx, sy = _client(page, *start)
    ex, ey = _client(page, *end)
    page.mouse.move((sx + ex) / 2, (sy + ey) / 2, steps=4)
    page.mouse.move(ex, ey, steps=4)
    page.mouse.up()


def _saved(page) -> None:
    page.wait_for_function("() => document.getElementById('annotator').dataset.saveState === 'saved'")


def _image(api, task_id: int, sha1: str) -> dict:
    r = api.get(f"/api/v1/labeling/tasks/{task_id}/images/{sha1}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _wait_image(api, task_id: int, sha1: str, cond, timeout: float = 10) -> dict:
    end = time.monotonic() + timeout
    while True:
        state = _image(api, task_id, sha1)
        if cond(state) or time.monotonic() > end:
            return state
        time.sleep(0.1)


def _near(box: dict, expected: tuple, tol: float = 0.75) -> bool:
    return all(abs(box[k] - v) <= tol for k, v in zip(("x1", "y1", "x2", "y2"), expected, strict=True))


def test_draw_class_resize_reload_no_objects_finish(page, hub_server, api, tmp_path):
    project = setup_project(api, name="lab", classes=("cat", "dog"))
    version = upload(api, make_zip(tmp_path / "raw.zip", {"a": [], "b": [], "c": []}), project="lab", name="raw")

    # the task is made through the page's form
    page.goto(f"{hub_server}/projects/{project['id']}/labeling")
    page.select_option("#task-version", str(version["id"]))
    page.fill("#task-classes", "cat,dog")
    page.uncheck("#task-pre")
    page.click("#create-task-button")
    page.wait_for_url("**/labeling/tasks/*")
    task_id = int(page.url.split("/labeling/tasks/")[1].split("?")[0])
    page.wait_for_function("() => document.getElementById('annotator').dataset.sha1")
    first = page.get_attribute("#annotator", "data-sha1")
    assert page.inner_text("#progress-text").startswith("0 / 3")

    _drag(page, (10, 8), (40, 30))
    _saved(page)
    assert page.locator("#box-list li").count() == 1
    assert page.get_attribute("#box-list li", "data-class") == "cat"   # the first class is the default

    page.keyboard.press("2")
    _saved(page)
    assert page.get_attribute("#box-list li", "data-class") == "dog"

    _drag(page, (40, 30), (50, 40))   # the bottom-right corner of the selected box
    _saved(page)
    page.keyboard.down("Shift")       # shift+drag draws inside a box; then undo it
    _drag(page, (20, 20), (30, 30))
    page.keyboard.up("Shift")
    assert page.locator("#box-list li").count() == 2
    page.keyboard.press("Control+z")
    _saved(page)
    assert page.locator("#box-list li").count() == 1
    page.wait_for_function("() => document.getElementById('progress-text').textContent.startsWith('1 / 3')")

    page.reload()
    page.wait_for_function(f"() => document.getElementById('annotator').dataset.sha1 === '{first}'")
    page.wait_for_selector("#box-list li")
    assert page.locator("#box-list li").count() == 1
    assert page.get_attribute("#box-list li", "data-class") == "dog"
    saved = _image(api, task_id, first)
    assert saved["state"] == "done" and saved["width"] == 64 and saved["height"] == 48
    assert len(saved["boxes"]) == 1 and saved["boxes"][0]["class"] == "dog", saved
    assert _near(saved["boxes"][0], (10, 8, 50, 40)), saved["boxes"][0]

    page.keyboard.press("n")
    page.wait_for_function(f"() => document.getElementById('annotator').dataset.sha1 !== '{first}'")
    second = page.get_attribute("#annotator", "data-sha1")
    page.click("#no-objects")
    empty = _wait_image(api, task_id, second, lambda s: s["state"] == "done")
    assert empty["state"] == "done" and empty["boxes"] == [], empty

    page.fill("#finish-name", "labeled")
    page.click("#finish")
    page.wait_for_url("**/versions/*")
    assert page.dialogs == ["1 of 3 images are not done: they get no ground truth. Finish anyway?"]
    task = api.get(f"/api/v1/labeling/tasks/{task_id}").get_json()
    assert task["state"] == "done" and task["result_version_id"]
    assert page.url.endswith(f"/versions/{task['result_version_id']}")
    assets = api.get(f"/api/v1/versions/{task['result_version_id']}/assets?limit=100").get_json()["assets"]
    by_sha1 = {a["sha1"]: a for a in assets}
    gt = [b for b in by_sha1[first]["boxes"] if b["kind"] == "gt"]
    assert len(gt) == 1 and gt[0]["class"] == "dog" and _near(gt[0], (10, 8, 50, 40)), gt
    assert gt[0]["tags"].get("source") == "human"
    assert second in by_sha1 and not [b for b in by_sha1[second]["boxes"] if b["kind"] == "gt"]

    # a finished task's page still shows its images, read only
    page.goto(f"{hub_server}/labeling/tasks/{task_id}")
    page.wait_for_function("() => document.getElementById('annotator').dataset.sha1")
    assert page.locator("#finish").count() == 0 and page.is_disabled("#no-objects")


def test_accept_one_pre_annotation_and_reject_another(page, hub_server, api, tmp_path):
    setup_project(api, name="pre", classes=("cat", "dog"))
    boxes = [("cat", 4.0, 4.0, 24.0, 20.0, 0.9), ("dog", 30.0, 10.0, 60.0, 40.0, 0.4)]
    preds = {"p1": boxes, "p2": boxes}
    version = upload(api, pred_zip(tmp_path / "pred.zip", {"p1": [], "p2": []}, preds), project="pre", name="mined")
    r = api.post("/api/v1/projects/pre/labeling/tasks",
                 json={"version_id": version["id"], "classes": ["cat", "dog"], "pre_annotations": True})
    assert r.status_code == 201, r.get_json()
    task_id = r.get_json()["id"]

    page.goto(f"{hub_server}/labeling/tasks/{task_id}")
    page.wait_for_selector("#box-list li.pending")
    sha1 = page.get_attribute("#annotator", "data-sha1")
    assert page.locator("#box-list li.pending").count() == 2

    # keyboard only: Tab to the first box, accept it (A), which moves on to the next one, reject it (R)
    page.focus("#canvas")
    page.keyboard.press("Tab")
    assert page.get_attribute("#box-list li.selected", "data-class") == "cat"
    page.keyboard.press("a")
    assert page.get_attribute("#box-list li.selected", "data-class") == "dog"
    page.keyboard.press("r")
    _saved(page)
    assert page.locator("#box-list li").count() == 1
    assert page.locator("#box-list li.pending").count() == 0

    state = _wait_image(api, task_id, sha1, lambda s: s["state"] == "done")
    assert state["state"] == "done" and state["source"] == "saved", state
    assert [(b["class"], b["source"]) for b in state["boxes"]] == [("cat", "prediction")]
    assert _near(state["boxes"][0], (4, 4, 24, 20), tol=0.01)

    # the other image: all its pre-annotations at once
    page.keyboard.press("n")
    page.wait_for_function(f"() => document.getElementById('annotator').dataset.sha1 !== '{sha1}'")
    other = page.get_attribute("#annotator", "data-sha1")
    page.wait_for_selector("#box-list li.pending")
    page.click("#accept-all")
    _saved(page)
    state = _wait_image(api, task_id, other, lambda s: s["state"] == "done")
    assert [(b["class"], b["source"]) for b in state["boxes"]] == [("cat", "prediction"), ("dog", "prediction")]

    page.click("#finish")
    page.wait_for_url("**/versions/*")
    task = api.get(f"/api/v1/labeling/tasks/{task_id}").get_json()
    assets = api.get(f"/api/v1/versions/{task['result_version_id']}/assets").get_json()["assets"]
    gt = {a["sha1"]: [(b["class"], b["tags"].get("source")) for b in a["boxes"] if b["kind"] == "gt"] for a in assets}
    assert gt == {sha1: [("cat", "prediction")], other: [("cat", "prediction"), ("dog", "prediction")]}


def test_keyboard_only_and_zoomed_drawing(page, hub_server, api, tmp_path):
    setup_project(api, name="keys", classes=("cat", "dog"))
    version = upload(api, make_zip(tmp_path / "k.zip", {"k1": [], "k2": []}), project="keys", name="raw")
    task_id = api.post("/api/v1/projects/keys/labeling/tasks",
                       json={"version_id": version["id"], "classes": ["cat", "dog"]}).get_json()["id"]
    page.goto(f"{hub_server}/labeling/tasks/{task_id}")
    page.wait_for_function("() => document.getElementById('annotator').dataset.sha1")
    sha1 = page.get_attribute("#annotator", "data-sha1")
    boxes = "() => ymirAnnotator.current.boxes.map(b => [b.x1, b.y1, b.x2, b.y2, b.cls])"

    page.focus("#canvas")
    page.keyboard.press("2")          # no box selected: the class for new boxes
    page.keyboard.press("b")          # a new box in the middle of the view
    (x1, y1, x2, y2, cls), = page.evaluate(boxes)
    assert cls == "dog" and x2 - x1 >= 10 and y2 - y1 >= 10
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    for _ in range(2):
        page.keyboard.press("Shift+ArrowDown")
    assert page.evaluate(boxes) == [[x1 + 3, y1, x2 + 3, y2 + 2, "dog"]]
    page.keyboard.press("Control+z")   # the resize (one step for the run of keys)
    assert page.evaluate(boxes) == [[x1 + 3, y1, x2 + 3, y2, "dog"]]
    page.keyboard.press("Control+z")   # the move
    page.keyboard.press("Control+y")   # the move again
    assert page.evaluate(boxes) == [[x1 + 3, y1, x2 + 3, y2, "dog"]]
    page.keyboard.press("Tab")         # past the last box: none selected
    page.focus("#canvas")
    page.keyboard.press("Tab")
    page.keyboard.press("1")
    _saved(page)
    state = _wait_image(api, task_id, sha1, lambda s: s["boxes"] and s["boxes"][0]["class"] == "cat")
    assert [(b["class"], b["source"]) for b in state["boxes"]] == [("cat", "human")]
    assert _near(state["boxes"][0], (x1 + 3, y1, x2 + 3, y2), tol=0.01)

    # zoomed in around a point, a drag still lands on the image pixels under the mouse
    cx, cy = _client(page, 16, 12)
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -400)
    page.wait_for_function("() => !ymirAnnotator.current.view.fitted")
    assert abs(_client(page, 16, 12)[0] - cx) < 1 and abs(_client(page, 16, 12)[1] - cy) < 1
    # space + drag pans the view and leaves the boxes alone
    before = page.evaluate(boxes)
    ox = page.evaluate("() => ymirAnnotator.current.view.ox")
    page.keyboard.down(" ")
    page.mouse.down()
    page.mouse.move(cx + 60, cy + 20, steps=4)
    page.mouse.up()
    page.keyboard.up(" ")
    assert abs(page.evaluate("() => ymirAnnotator.current.view.ox") - ox - 60) < 1
    assert page.evaluate(boxes) == before
    page.keyboard.press("Delete")      # the selected box
    _drag(page, (12, 10), (20, 16))
    _saved(page)
    state = _wait_image(api, task_id, sha1, lambda s: len(s["boxes"]) == 1 and s["boxes"][0]["x1"] < 13)
    assert _near(state["boxes"][0], (12, 10, 20, 16), tol=0.25), state["boxes"]

    page.keyboard.press("Escape")
    page.keyboard.press("ArrowRight")  # no box selected: the next image
    page.wait_for_function(f"() => document.getElementById('annotator').dataset.sha1 !== '{sha1}'")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => document.getElementById('annotator').dataset.sha1 === '{sha1}'")


def test_closing_the_tab_loses_no_label(page, hub_server, api, tmp_path):
    setup_project(api, name="close", classes=("cat",))
    version = upload(api, make_zip(tmp_path / "c.zip", {"c1": []}), project="close", name="raw")
    task_id = api.post("/api/v1/projects/close/labeling/tasks",
                       json={"version_id": version["id"], "classes": ["cat"]}).get_json()["id"]
    tab = page.context.new_page()
    tab.goto(f"{hub_server}/labeling/tasks/{task_id}")
    tab.wait_for_function("() => document.getElementById('annotator').dataset.sha1")
    sha1 = tab.get_attribute("#annotator", "data-sha1")
    tab.evaluate("() => { ymirAnnotator.current.saveDelay = 600000; }")   # only the tab closing saves
    _drag(tab, (5, 5), (30, 25))
    assert tab.get_attribute("#annotator", "data-save-state") == "dirty"
    tab.close()
    state = _wait_image(api, task_id, sha1, lambda s: s["boxes"])
    assert len(state["boxes"]) == 1 and _near(state["boxes"][0], (5, 5, 30, 25)), state


def test_two_labelers_never_get_the_same_image(page, hub_server, api, workspace, tmp_path):
    from hub import auth

    auth.add_user(workspace.database, "bob", "bob-pass-123", "user")
    setup_project(api, name="two", classes=("cat",))
    version = upload(api, make_zip(tmp_path / "t.zip", {"t1": [], "t2": [], "t3": []}), project="two", name="raw")
    task_id = api.post("/api/v1/projects/two/labeling/tasks",
                       json={"version_id": version["id"], "classes": ["cat"], "assignees": ["admin", "bob"]}).get_json()["id"]
    page.goto(f"{hub_server}/labeling/tasks/{task_id}")
    page.wait_for_function("() => document.getElementById('annotator').dataset.sha1")
    mine = page.get_attribute("#annotator", "data-sha1")

    context = page.context.browser.new_context()
    try:
        bob = context.new_page()
        bob.goto(f"{hub_server}/login")
        bob.fill("input[name=username]", "bob")
        bob.fill("input[name=password]", "bob-pass-123")
        bob.click("button[type=submit]")
        bob.wait_for_url(f"{hub_server}/projects")
        bob.goto(f"{hub_server}/labeling/tasks/{task_id}")
        bob.wait_for_function("() => document.getElementById('annotator').dataset.sha1")
        assert bob.get_attribute("#annotator", "data-sha1") != mine
        # following a link to the image admin holds: bob is told, and his save is refused
        bob.goto(f"{hub_server}/labeling/tasks/{task_id}?image={mine}")
        bob.wait_for_function(f"() => document.getElementById('annotator').dataset.sha1 === '{mine}'")
        assert "another labeler holds this image" in bob.inner_text("#save-status")
        bob.focus("#canvas")
        bob.keyboard.press("b")
        bob.wait_for_function("() => document.getElementById('annotator').dataset.saveState === 'error'")
        assert "being labeled by another user" in bob.inner_text("#save-status")
    finally:
        context.close()
    assert _image(api, task_id, mine)["boxes"] == []


def test_import_form_shows_the_report_or_the_error(page, hub_server, api, tmp_path):
    setup_project(api, name="imp", classes=("cat",))
    version = upload(api, make_zip(tmp_path / "i.zip", {"i1": []}), project="imp", name="raw")
    task_id = api.post("/api/v1/projects/imp/labeling/tasks",
                       json={"version_id": version["id"], "classes": ["cat"]}).get_json()["id"]
    page.goto(f"{hub_server}/labeling/tasks/{task_id}")
    page.wait_for_function("() => document.getElementById('annotator').dataset.sha1")
    bad = tmp_path / "not-an-export.json"
    bad.write_text("this is not JSON")
    page.set_input_files("#import-form input[name=file]", str(bad))
    page.click("#import-button")
    page.wait_for_selector("#import-report:not([hidden])")
    assert page.inner_text("#import-report").startswith("import failed: ")
    assert "CSRF" not in page.inner_text("#import-report")
