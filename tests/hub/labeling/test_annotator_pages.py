"""The labeling pages through the test client: the project's task list and create form, the annotator page
(config for the JS, export links, finish/cancel), the guideline shown beside it (Markdown as text, PDF in a
frame), and user errors flashed back to the form."""

from __future__ import annotations

import io
import json
import re

from hub_helpers import make_zip
from test_diagnosis_helpers import setup_project, upload


def _version(api, tmp_path, project="lab", stems=("a", "b", "c")) -> dict:
    return upload(api, make_zip(tmp_path / f"{project}.zip", {s: [] for s in stems}), project=project, name="raw")


def _create(client, project_id: int, **fields):
    data = {"csrf_token": client.csrf, "backend": "builtin", **fields}
    return client.post(f"/projects/{project_id}/labeling", data=data)


def _config(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="annotator-config">(.*?)</script>', html, re.S)
    assert m, "no annotator config on the page"
    return json.loads(m.group(1))


def test_list_create_and_open_a_task(client, api, tmp_path):
    project = setup_project(api, name="lab", classes=("cat", "dog"))
    version = _version(api, tmp_path)
    html = client.get(f"/projects/{project['id']}/labeling").get_data(as_text=True)
    assert 'id="no-tasks"' in html and f'<option value="{version["id"]}"' in html
    assert "Not available yet" not in html

    r = _create(client, project["id"], version=str(version["id"]), classes="cat,dog", name="first pass",
                assignees="admin", pre_annotations="on")
    assert r.status_code == 302, r.get_data(as_text=True)
    task_url = r.headers["Location"]
    task_id = int(task_url.rsplit("/", 1)[1])
    assert task_url.endswith(f"/labeling/tasks/{task_id}")

    html = client.get(f"/projects/{project['id']}/labeling").get_data(as_text=True)
    row = re.search(rf'<tr data-task="{task_id}".*?</tr>', html, re.S).group(0)
    assert "first pass" in row and "0 / 3 images" in row and "builtin" in row and "open" in row

    page = client.get(task_url).get_data(as_text=True)
    assert '<canvas id="canvas"' in page and "annotator.js" in page
    cfg = _config(page)
    assert cfg["taskId"] == task_id and cfg["classes"] == ["cat", "dog"] and cfg["state"] == "open"
    assert cfg["api"] == f"/api/v1/labeling/tasks/{task_id}"
    for fmt in ("ls", "voc", "coco"):
        assert f"/api/v1/labeling/tasks/{task_id}/export?format={fmt}" in page
    for fmt in ("voc", "coco"):   # the links work with the page's session
        r = client.get(f"/api/v1/labeling/tasks/{task_id}/export?format={fmt}")
        assert r.status_code == 200 and r.headers["Content-Disposition"].startswith("attachment"), fmt
    assert 'id="finish"' in page and 'id="cancel-task"' in page and 'id="guideline"' not in page


def test_guideline_markdown_as_text_and_pdf_in_a_frame(client, api, tmp_path):
    project = setup_project(api, name="lab", classes=("cat", "dog"))
    version = _version(api, tmp_path)
    task_url = _create(client, project["id"], version=str(version["id"])).headers["Location"]
    task_id = int(task_url.rsplit("/", 1)[1])

    md = b"# Cats\n\nBox the whole cat, tail included. <script>alert(1)</script>\n"
    r = client.post(f"{task_url}/guideline", data={"csrf_token": client.csrf, "file": (io.BytesIO(md), "guide.md")},
                    content_type="multipart/form-data")
    assert r.status_code == 302
    page = client.get(task_url).get_data(as_text=True)
    text = re.search(r'<pre id="guideline-text">(.*?)</pre>', page, re.S).group(1)
    assert "Box the whole cat, tail included." in text and "&lt;script&gt;" in text and "<script>alert" not in page

    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    client.post(f"{task_url}/guideline", data={"csrf_token": client.csrf, "file": (io.BytesIO(pdf), "guide.pdf")},
                content_type="multipart/form-data")
    page = client.get(task_url).get_data(as_text=True)
    assert f'<iframe src="/api/v1/labeling/tasks/{task_id}/guideline"' in page and "guideline-text" not in page
    served = client.get(f"/api/v1/labeling/tasks/{task_id}/guideline")
    assert served.status_code == 200 and served.data.startswith(b"%PDF")


def test_bad_input_is_flashed_back_to_the_form(client, api, tmp_path):
    project = setup_project(api, name="lab", classes=("cat", "dog"))
    other = setup_project(api, name="other", classes=("cat",))
    version = _version(api, tmp_path)
    other_version = _version(api, tmp_path, project="other", stems=("x",))
    back = f"/projects/{project['id']}/labeling"

    for fields, message in [
        ({"version": ""}, "choose a dataset version"),
        ({"version": str(other_version["id"])}, "not in this project"),
        ({"version": str(version["id"]), "classes": "unicorn"}, "unicorn"),
    ]:
        r = _create(client, project["id"], **fields)
        assert r.status_code == 302 and r.headers["Location"].endswith(back), fields
        html = client.get(back).get_data(as_text=True)
        assert 'class="flash error"' in html and message in html, (fields, html)
    assert other["id"] != project["id"]

    task_url = _create(client, project["id"], version=str(version["id"])).headers["Location"]
    r = client.post(f"{task_url}/guideline", data={"csrf_token": client.csrf}, content_type="multipart/form-data")
    assert r.status_code == 302
    assert "choose a PDF or Markdown file" in client.get(task_url).get_data(as_text=True)
    r = client.post(f"{task_url}/guideline", data={"file": (io.BytesIO(b"x"), "g.md")}, content_type="multipart/form-data")
    assert r.status_code == 403   # no CSRF token
    assert client.get("/labeling/tasks/999").status_code == 404
