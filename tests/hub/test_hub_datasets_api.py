"""Projects, classes and dataset import through the JSON API (background import, progress, report)."""

from __future__ import annotations

import io
import shutil
import zipfile

from hub_helpers import make_zip, wait_ready

from hub.store import assets as asset_store


def _setup(api, classes=("circle", "square", "triangle")):
    for c in classes:
        api.post("/api/v1/classes", json={"name": c})
    targets = ["circle"] if "circle" in classes else []
    r = api.post("/api/v1/projects", json={"name": "shapes", "classes": targets, "description": "demo"})
    assert r.status_code == 201
    return r.get_json()


def _upload(api, path, **fields):
    data = {"file": (io.BytesIO(path.read_bytes()), path.name), **fields}
    return api.post("/api/v1/projects/shapes/datasets/import", data=data, content_type="multipart/form-data")


def _xml_boxes(path):
    with zipfile.ZipFile(path) as zf:
        return sum(zf.read(n).count(b"<object>") for n in zf.namelist() if n.endswith(".xml"))


def test_projects_crud(api):
    p = _setup(api)
    assert p["targets"] == ["circle"] and p["description"] == "demo"
    assert api.post("/api/v1/projects", json={"name": "shapes"}).status_code == 409
    r = api.patch(f"/api/v1/projects/{p['id']}", json={"description": "new", "classes": ["square", "circle"]})
    assert r.get_json()["targets"] == ["square", "circle"] and r.get_json()["description"] == "new"
    assert api.get("/api/v1/projects/shapes").get_json()["id"] == p["id"]
    assert api.post("/api/v1/projects/shapes/archive").get_json()["archived"] is True
    assert api.get("/api/v1/projects").get_json()["projects"] == []
    assert len(api.get("/api/v1/projects?archived=1").get_json()["projects"]) == 1


def test_project_create_refuses_unknown_targets_unless_asked_to_add_them(api):
    r = api.post("/api/v1/projects", json={"name": "street", "classes": ["person"]})
    assert r.status_code == 404 and "person" in r.get_json()["error"]
    r = api.post("/api/v1/projects", json={"name": "street", "classes": ["Person", "car"], "add_classes": True})
    assert r.status_code == 201 and r.get_json()["targets"] == ["person", "car"]
    assert r.get_json()["added_classes"] == ["person", "car"]
    assert api.get("/api/v1/classes/car").status_code == 200


def test_classes_api(api):
    assert (
        api.post("/api/v1/classes", json={"name": " Person ", "aliases": ["Human"]}).get_json()["name"]
        == "person"
    )
    assert api.post("/api/v1/classes/person/aliases", json={"alias": "MAN"}).get_json()["aliases"] == [
        "human",
        "man",
    ]
    assert api.post("/api/v1/classes", json={"name": "man"}).status_code == 409
    assert api.get("/api/v1/classes/human").get_json()["name"] == "person"
    assert api.patch("/api/v1/classes/person", json={"name": "people"}).get_json()["name"] == "people"
    assert api.delete("/api/v1/classes/people/aliases/man").get_json()["aliases"] == ["human"]


def test_zip_upload_imports_in_background_with_report(api, sample_zip, workspace):
    _setup(api)
    r = _upload(api, sample_zip, name="train")
    assert r.status_code == 202
    started = r.get_json()
    assert started["state"] in ("importing", "ready") and started["poll"].endswith(
        f"/versions/{started['version_id']}"
    )
    v = wait_ready(api, started["version_id"])
    assert v["state"] == "ready", v.get("error")
    assert v["images"] == 12 and v["gt_boxes"] == _xml_boxes(sample_zip)
    assert v["summary"]["boxes"] == v["gt_boxes"] and v["progress"] == 1.0
    assert sum(c["boxes"] for c in v["class_counts"]["gt"].values()) == v["gt_boxes"]
    assert v["report"]["images"] == 12 and v["report"]["skipped"] == []
    assert v["group_name"] == "train" and v["number"] == 1
    assets = api.get(f"/api/v1/versions/{v['id']}/assets?limit=5").get_json()
    assert assets["total"] == 12 and len(assets["assets"]) == 5 and assets["assets"][0]["width"] > 0
    circle = api.get(f"/api/v1/versions/{v['id']}/assets?class=circle").get_json()
    assert circle["total"] == v["class_counts"]["gt"]["circle"]["images"]
    # the uploaded temp zip is gone once the import is done
    assert not list(workspace.settings.tmp_dir.glob("upload-*"))
    datasets = api.get("/api/v1/projects/shapes/datasets").get_json()["datasets"]
    assert datasets[0]["name"] == "train" and datasets[0]["versions"][0]["id"] == v["id"]


def test_skipped_files_are_reported_with_reasons(api, tmp_path):
    _setup(api)
    z = make_zip(
        tmp_path / "d.zip",
        {"a": [("circle", 1, 1, 20, 20)], "b": []},
        extra={"images/broken.jpg": b"not an image", "images/notes.txt": b"hello"},
    )
    v = wait_ready(api, _upload(api, z).get_json()["version_id"])
    assert v["state"] == "ready" and v["images"] == 2
    skipped = {s["file"]: s["reason"] for s in v["report"]["skipped"]}
    assert any("broken.jpg" in f for f in skipped) and all(skipped.values())


def test_unknown_classes_stop_leaves_a_failed_version_and_no_orphans(api, tmp_path, workspace):
    _setup(api, classes=("circle",))
    z = make_zip(tmp_path / "u.zip", {"a": [("circle", 1, 1, 9, 9)], "b": [("zebra", 2, 2, 9, 9)]})
    v = wait_ready(api, _upload(api, z).get_json()["version_id"])
    assert v["state"] == "failed" and "zebra" in v["error"] and v["images"] == 0
    db = workspace.database.db
    assert (
        db.execute("SELECT count(*) FROM version_assets WHERE version_id = ?", [v["id"]]).fetchone()[0] == 0
    )
    assert db.execute("SELECT count(*) FROM annotations WHERE version_id = ?", [v["id"]]).fetchone()[0] == 0
    files = [p for p in workspace.settings.assets_dir.rglob("*") if p.is_file()]
    assert files == [] and db.execute("SELECT count(*) FROM assets").fetchone()[0] == 0
    # ignore drops the unknown boxes; add creates the class
    v2 = wait_ready(api, _upload(api, z, unknown="ignore").get_json()["version_id"])
    assert v2["state"] == "ready" and v2["gt_boxes"] == 1 and v2["images"] == 2
    v3 = wait_ready(api, _upload(api, z, unknown="add").get_json()["version_id"])
    assert v3["gt_boxes"] == 2 and "zebra" in v3["class_counts"]["gt"]
    assert "zebra" in [c["name"] for c in api.get("/api/v1/classes").get_json()["classes"]]
    assert len(asset_store.known_sha1s(workspace.database, [])) == 0


def test_aliases_resolve_to_main_names_on_import(api, tmp_path):
    _setup(api, classes=())
    api.post("/api/v1/classes", json={"name": "person", "aliases": ["pedestrian"]})
    z = make_zip(tmp_path / "a.zip", {"a": [("Pedestrian", 1, 1, 9, 9), ("person", 3, 3, 9, 9)]})
    v = wait_ready(api, _upload(api, z).get_json()["version_id"])
    assert v["class_counts"]["gt"] == {"person": {"boxes": 2, "images": 1}}


def test_path_copy_and_public_sources(api, sample_zip, workspace):
    _setup(api)
    shared = workspace.settings.sharing_dir / "voc"
    shared.mkdir(parents=True)
    shutil.copy(sample_zip, shared / "set.zip")
    r = api.post("/api/v1/projects/shapes/datasets/import", json={"source": "path", "value": "voc/set.zip"})
    v = wait_ready(api, r.get_json()["version_id"])
    assert v["images"] == 12 and v["group_name"] == "set"
    r = api.post("/api/v1/projects/shapes/datasets/import", json={"source": "path", "value": "/etc"})
    assert r.status_code == 400 and "outside the sharing folder" in r.get_json()["error"]
    copy = wait_ready(
        api,
        api.post(
            "/api/v1/projects/shapes/datasets/import",
            json={"source": "copy", "value": v["id"], "name": "copied"},
        ).get_json()["version_id"],
    )
    assert copy["images"] == 12 and copy["gt_boxes"] == v["gt_boxes"] and copy["parent_ids"] == [v["id"]]
    # public: refused until an admin marks the dataset public
    other = api.post("/api/v1/projects", json={"name": "other"}).get_json()
    r = api.post("/api/v1/projects/other/datasets/import", json={"source": "public", "value": v["id"]})
    assert r.status_code == 400 and "not a public dataset" in r.get_json()["error"]
    assert (
        api.post(f"/api/v1/datasets/{v['group_id']}/public", json={"public": True}).get_json()["public"]
        is True
    )
    assert [x["id"] for x in api.get("/api/v1/datasets/public").get_json()["versions"]] == [v["id"]]
    pub = wait_ready(
        api,
        api.post(
            "/api/v1/projects/other/datasets/import", json={"source": "public", "value": v["id"]}
        ).get_json()["version_id"],
    )
    assert pub["project_id"] == other["id"] and pub["images"] == 12


def test_bad_zip_fails_with_a_message(api, tmp_path):
    _setup(api)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 this is no zip")
    v = wait_ready(api, _upload(api, bad).get_json()["version_id"])
    assert v["state"] == "failed" and "zip" in v["error"]
    r = api.post(
        "/api/v1/projects/shapes/datasets/import",
        data={"file": (io.BytesIO(b"x"), "notes.txt")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 400 and ".zip" in r.get_json()["error"]


def test_url_source(api, sample_zip, tmp_path):
    """An http URL of a zip is downloaded and imported (a real local HTTP server)."""
    import functools
    import http.server
    import threading

    _setup(api)
    shutil.copy(sample_zip, tmp_path / "remote.zip")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_port}/remote.zip"
        r = api.post("/api/v1/projects/shapes/datasets/import", json={"source": "url", "value": url})
        v = wait_ready(api, r.get_json()["version_id"])
        assert v["state"] == "ready" and v["images"] == 12 and v["group_name"] == "remote"
        missing = api.post(
            "/api/v1/projects/shapes/datasets/import",
            json={"source": "url", "value": url.replace("remote", "gone")},
        )
        failed = wait_ready(api, missing.get_json()["version_id"])
        assert failed["state"] == "failed" and "404" in failed["error"]
    finally:
        srv.shutdown()
