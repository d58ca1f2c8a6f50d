"""Fleet pages through the test client (no broker: the hub writes deployments that a fleet-running
hub would send): provision with the token shown once, publish, review, try it out, deploy, device
page, rollback, remove."""

from __future__ import annotations

import io
import re

from fleet_helpers import package
from PIL import Image


def _csrf(client, url: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


def test_fleet_pages_end_to_end_without_a_broker(client, workspace, tmp_path):
    from hub.store import classes as class_store
    from hub.store import projects as project_store

    for c in ("circle", "square", "triangle"):
        class_store.add_class(workspace.database, c)
    project_store.create_project(workspace.database, "edge", targets=["circle"])
    page = client.get("/deployment").get_data(as_text=True)
    assert "Deployment" in page and "not connected" in page and "No devices yet" in page
    csrf = client.csrf
    r = client.post("/deployment/devices", data={"csrf_token": csrf, "id": "cam-7", "name": "Dock", "tags": "dock, a",
                                                 "project": "1"})
    assert r.status_code == 302
    page = client.get("/deployment").get_data(as_text=True)
    token = re.search(r'<pre class="token">(ymird_[^<]+)</pre>', page).group(1)
    assert "Dock" in page and 'data-device="cam-7"' in page
    assert token not in client.get("/deployment").get_data(as_text=True)  # shown once
    # a bad id is refused with a message, nothing created
    client.post("/deployment/devices", data={"csrf_token": csrf, "id": "no spaces"})
    assert "1-64 of letters" in client.get("/deployment").get_data(as_text=True)

    with open(package(tmp_path / "p"), "rb") as f:
        r = client.post("/deployment/algorithms", data={"csrf_token": csrf, "file": (f, "tiny.zip"), "title": "Shapes"},
                        content_type="multipart/form-data")
    assert r.status_code == 302
    algo_url = r.headers["Location"]
    page = client.get(algo_url).get_data(as_text=True)
    assert "Shapes" in page and "private" in page and "Publish to public" in page
    algo_id = int(algo_url.rstrip("/").rsplit("/", 1)[1])
    client.post(f"/deployment/algorithms/{algo_id}/public", data={"csrf_token": csrf})
    assert 'id="review"' in client.get(algo_url).get_data(as_text=True)
    client.post(f"/deployment/algorithms/{algo_id}/review", data={"csrf_token": csrf, "decision": "approve",
                                                                  "note": "fine"})
    assert "public — fine" in client.get(algo_url).get_data(as_text=True)
    listing = client.get("/deployment/algorithms").get_data(as_text=True)
    assert 'id="public-algorithms"' in listing and "tiny v1" in listing

    buf = io.BytesIO()
    Image.new("RGB", (48, 32), (200, 200, 200)).save(buf, "JPEG")
    tried = client.post(f"/deployment/algorithms/{algo_id}/try", data={
        "csrf_token": csrf, "image": (io.BytesIO(buf.getvalue()), "x.jpg"), "conf": "0.0"},
        content_type="multipart/form-data").get_data(as_text=True)
    assert 'id="tried"' in tried and "data:image/png;base64," in tried

    r = client.post("/deployment/deploy", data={"csrf_token": csrf, "algorithm_id": str(algo_id),
                                                "target": "tag:dock", "conf": "0.3", "batch_percent": "50"})
    assert r.status_code == 302 and "/deployment/deployments/" in r.headers["Location"]
    dep_page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "pending" in dep_page and "tag:dock" in dep_page and '"conf": 0.3' in dep_page
    again = client.post("/deployment/deploy", data={"csrf_token": csrf, "algorithm_id": str(algo_id),
                                                    "target": "tag:dock", "conf": "0.3", "batch_percent": "50"})
    assert again.headers["Location"] == r.headers["Location"]  # the same running deployment
    dev = client.get("/deployment/devices/cam-7").get_data(as_text=True)
    assert "Algorithm centre" in dev and "metrics-chart" in dev and "Deployment history" in dev
    client.post(r.headers["Location"] + "/rollback", data={"csrf_token": csrf})
    assert "rolling_back" in client.get(r.headers["Location"]).get_data(as_text=True)
    client.post("/deployment/devices/cam-7/remove", data={"csrf_token": csrf})
    assert "No devices yet" in client.get("/deployment").get_data(as_text=True)
    assert client.get("/deployment/devices/cam-7").status_code == 404
