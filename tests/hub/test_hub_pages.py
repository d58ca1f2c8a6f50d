"""Server-rendered pages: navigation, projects, classes, import form, dataset page, thumbnails, ops."""

from __future__ import annotations

import io
import re

from hub_helpers import make_zip, wait_ready

from hub.store import classes as class_store


def _form(client, url, **data):
    return client.post(url, data={"csrf_token": client.csrf, **data})


def test_layout_has_the_guides_navigation(client):
    html = client.get("/projects").get_data(as_text=True)
    for label in ("Projects", "Classes", "Images", "Deployment"):
        assert f">{label}</a>" in html
    assert "cdn" not in html.lower() and "https://" not in html  # no CDN links
    _form(client, "/projects", name="demo")
    html = client.get("/projects/1").get_data(as_text=True)
    for label in ("Datasets", "Dataset analysis", "Model training", "Models", "Diagnosis", "Iteration"):
        assert f">{label}</a>" in html, label


def test_every_nav_link_works_and_unbuilt_sections_say_so(client, app):
    from hub.web import PROJECT_SECTIONS

    _form(client, "/projects", name="demo")
    adapter = app.url_map.bind("localhost")
    for slug, _label in PROJECT_SECTIONS[1:]:
        url = f"/projects/1/{slug}"
        r = client.get(url)
        assert r.status_code == 200, url
        if adapter.match(url)[0] == "web.project_section":  # not built yet: an honest placeholder
            assert "Not available yet" in r.get_data(as_text=True), url
    for url in ("/projects", "/classes", "/deployment", "/account", "/users"):
        assert client.get(url).status_code == 200, url
    assert client.get("/projects/1/nonsense").status_code == 404


def test_projects_pages(client):
    _form(client, "/classes", name="Cat", aliases="kitty, Puss")
    r = _form(client, "/projects", name="pets", description="d", classes="kitty")
    assert r.status_code == 302 and r.headers["Location"].endswith("/projects/1")
    html = client.get("/projects").get_data(as_text=True)
    assert "pets" in html and "cat" in html
    _form(client, "/projects/1/edit", name="pets2", description="new", classes="cat")
    assert "pets2" in client.get("/projects/1").get_data(as_text=True)
    _form(client, "/projects/1/archive", archived="1")
    assert "pets2" not in client.get("/projects").get_data(as_text=True)
    assert "pets2" in client.get("/projects?archived=1").get_data(as_text=True)
    # a user error shows up as a message, not a crash
    r = _form(client, "/projects", name="pets2")
    assert r.status_code == 302
    assert "already exists" in client.get(r.headers["Location"]).get_data(as_text=True)


def test_classes_page(client, workspace):
    _form(client, "/classes", name="Person", aliases="human")
    _form(client, "/classes/person/alias", alias="Man")
    _form(client, "/classes/person/rename", new_name="people")
    c = class_store.get_class(workspace.database, "man")
    assert c["name"] == "people" and c["aliases"] == ["human", "man"]
    html = client.get("/classes").get_data(as_text=True)
    assert "people" in html and "human, man" in html


def test_import_through_the_page_then_see_counts_thumbnails_and_boxes(client, sample_zip, workspace, api):
    for c in ("circle", "square", "triangle"):
        _form(client, "/classes", name=c)
    _form(client, "/projects", name="shapes")
    assert "Upload a zip" in client.get("/projects/1/datasets/import").get_data(as_text=True)
    r = client.post(
        "/projects/1/datasets/import",
        data={"csrf_token": client.csrf, "source": "zip", "unknown": "stop", "name": "s",
              "file": (io.BytesIO(sample_zip.read_bytes()), "sample.zip")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 302 and "/versions/" in r.headers["Location"]
    vid = int(r.headers["Location"].rsplit("/", 1)[1])
    v = wait_ready(api, vid)
    html = client.get(f"/versions/{vid}").get_data(as_text=True)
    assert f'id="count-images">{v["images"]}<' in html and f'id="count-boxes">{v["gt_boxes"]}<' in html
    thumbs = re.findall(r'/assets/([0-9a-f]{40})/thumb.jpg', html)
    assert len(thumbs) == 12
    assert html.count("<rect ") == v["gt_boxes"]  # every box drawn over its thumbnail
    t = client.get(f"/assets/{thumbs[0]}/thumb.jpg")
    assert t.status_code == 200 and t.mimetype == "image/jpeg" and t.data[:2] == b"\xff\xd8"
    cached = workspace.settings.thumbs_dir / thumbs[0][:2] / f"{thumbs[0]}.jpg"
    assert cached.exists()
    mtime = cached.stat().st_mtime_ns
    client.get(f"/assets/{thumbs[0]}/thumb.jpg")
    assert cached.stat().st_mtime_ns == mtime  # made once
    assert client.get(f"/assets/{thumbs[0]}/image").status_code == 200
    assert client.get("/assets/" + "0" * 40 + "/thumb.jpg").status_code == 404
    # filter by class
    html = client.get(f"/versions/{vid}?class=circle").get_data(as_text=True)
    n = v["class_counts"]["gt"]["circle"]["images"]
    assert f"{n} image(s)" in html
    # project page lists the version with its counts
    page = client.get("/projects/1").get_data(as_text=True)
    assert f"/versions/{vid}" in page and ">ready<" in page


def test_pagination_and_tag_filter(client, workspace, api, tmp_path):
    _form(client, "/classes", name="circle")
    _form(client, "/projects", name="p")
    images = {f"im{i:02d}": [("circle", 1, 1, 9, 9)] for i in range(30)}
    tags = {f"im{i:02d}": {"site": "north" if i < 5 else "south"} for i in range(30)}
    z = make_zip(tmp_path / "t.zip", images, tags=tags)
    r = client.post("/projects/1/datasets/import", data={"csrf_token": client.csrf, "source": "zip",
                    "file": (io.BytesIO(z.read_bytes()), "t.zip")}, content_type="multipart/form-data")
    vid = int(r.headers["Location"].rsplit("/", 1)[1])
    wait_ready(api, vid)
    first = client.get(f"/versions/{vid}").get_data(as_text=True)
    assert "page 1 of 2" in first and first.count('class="thumb"') == 24
    second = client.get(f"/versions/{vid}?page=2").get_data(as_text=True)
    assert second.count('class="thumb"') == 6
    north = client.get(f"/versions/{vid}?tag=site=north").get_data(as_text=True)
    assert north.count('class="thumb"') == 5 and "5 image(s)" in north


def test_failed_import_shows_the_error(client, api, tmp_path):
    _form(client, "/projects", name="p")
    z = make_zip(tmp_path / "u.zip", {"a": [("unicorn", 1, 1, 9, 9)]})
    r = client.post("/projects/1/datasets/import", data={"csrf_token": client.csrf, "source": "zip",
                    "file": (io.BytesIO(z.read_bytes()), "u.zip")}, content_type="multipart/form-data")
    vid = int(r.headers["Location"].rsplit("/", 1)[1])
    wait_ready(api, vid)
    html = client.get(f"/versions/{vid}").get_data(as_text=True)
    assert "Import failed" in html and "unicorn" in html


def test_operations_from_the_page(client, api, sample_zip):
    for c in ("circle", "square", "triangle"):
        _form(client, "/classes", name=c)
    _form(client, "/projects", name="p")
    r = client.post("/projects/1/datasets/import", data={"csrf_token": client.csrf, "source": "zip",
                    "file": (io.BytesIO(sample_zip.read_bytes()), "s.zip")}, content_type="multipart/form-data")
    vid = int(r.headers["Location"].rsplit("/", 1)[1])
    wait_ready(api, vid)
    r = _form(client, f"/versions/{vid}/op", op="sample", count="4", seed="2")
    new = int(r.headers["Location"].rsplit("/", 1)[1])
    assert api.get(f"/api/v1/versions/{new}").get_json()["images"] == 4
    r = _form(client, f"/versions/{vid}/op", op="split", train="0.5", val="0.5", test="0")
    assert r.headers["Location"].endswith("/projects/1")
    r = _form(client, f"/versions/{vid}/op", op="sample", count="999")
    assert "more than the 12 images" in client.get(r.headers["Location"]).get_data(as_text=True)


def test_an_import_in_progress_shows_a_polled_progress_bar(client, workspace, sample_zip):
    from hub.datasets import service
    from hub.store import datasets as ds_store

    _form(client, "/projects", name="p")
    v = service.start_import(workspace, "p", kind="zip", value=str(sample_zip), unknown="add")
    ds_store.set_progress(workspace.database, v["id"], 0.4, "reading images")
    html = client.get(f"/versions/{v['id']}").get_data(as_text=True)
    assert '<progress id="progress" max="1" value="0.4">' in html and "40% reading images" in html
    assert f'data-poll="/api/v1/versions/{v["id"]}"' in html
    seen = []
    service.run_import(workspace, v["id"], lambda done, total, message="": seen.append((done, total)))
    assert seen[-1] == (12, 12) and len(seen) >= 2
    assert 'id="count-images">12<' in client.get(f"/versions/{v['id']}").get_data(as_text=True)
