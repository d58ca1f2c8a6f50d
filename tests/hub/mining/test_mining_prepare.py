"""Preparation of mining data on real imports: used assets, exact and near duplicates, filters, sampling."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from iteration_helpers import scenario_project, upload, wait_job
from PIL import Image, ImageEnhance

SMALL = {"train": 12, "pool": 24, "val": 6, "test": 6}


@pytest.fixture
def al(api, tmp_path):
    ids = scenario_project(api, tmp_path / "scen", sizes=SMALL)
    ids["dir"] = tmp_path / "scen"
    return ids


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in sorted(zf.namelist()) if n.startswith("images/") and not n.endswith("/")}


def _reencoded(data: bytes) -> bytes:
    """The same picture a little brighter, saved again: other bytes (other sha1), the same perceptual hash."""
    im = ImageEnhance.Brightness(Image.open(io.BytesIO(data)).convert("RGB")).enhance(1.04)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90)
    assert out.getvalue() != data
    return out.getvalue()


def _noise(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def _extra_zip(al, path) -> dict:
    """A second mining version: 3 exact copies of pool images, 4 re-encoded pool images, 2 training images,
    2 new images."""
    pool = list(_members(al["dir"] / "pool.zip").items())
    train = list(_members(al["dir"] / "train.zip").items())
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in pool[:3]:
            zf.writestr(f"images/copy-{name[7:]}", data)
        for name, data in pool[3:7]:
            zf.writestr(f"images/near-{name[7:-4]}.jpg", _reencoded(data))
        for name, data in train[:2]:
            zf.writestr(f"images/used-{name[7:]}", data)
        for i in range(2):
            zf.writestr(f"images/new-{i}.png", _noise(i))
    return {"exact": 3, "near": 4, "used": 2, "new": 2}


def test_preparation_drops_used_exact_and_near_duplicates_with_a_report(api, al, tmp_path):
    counts = _extra_zip(al, tmp_path / "extra.zip")
    extra = upload(api, tmp_path / "extra.zip", "al", "more frames")
    body = {"version_ids": [al["pool"], extra], "exclude_version_ids": [al["train"], al["val"], al["test"]],
            "near_dup_threshold": 4}
    r = api.post("/api/v1/projects/al/mining/prepare", json=body)
    assert r.status_code == 202, r.get_json()
    job = wait_job(api, r.get_json()["id"])
    assert job["state"] == "done", job
    report = job["result"]["report"]
    assert report["input"] == SMALL["pool"] + sum(counts.values())
    assert report["dropped"]["used"] == counts["used"]
    assert report["dropped"]["exact_duplicate"] == counts["exact"]
    assert report["dropped"]["near_duplicate"] == counts["near"]
    assert report["kept"] == SMALL["pool"] + counts["new"]
    near = report["examples"]["near_duplicate"]
    assert all(e["duplicate_of"] for e in near)
    v = api.get(f"/api/v1/versions/{job['result']['version_id']}").get_json()
    assert v["state"] == "ready" and v["images"] == report["kept"] and v["operation"] == "mining_prepare"
    assert v["report"]["dropped"]["near_duplicate"] == counts["near"]

    # the hashes are cached: a second preparation hashes nothing and gives the same answer
    r = api.post("/api/v1/projects/al/mining/prepare", json={**body, "sample": 5, "seed": 3})
    again = wait_job(api, r.get_json()["id"])
    assert again["state"] == "done" and again["result"]["report"]["kept"] == 5
    assert again["result"]["report"]["dropped"]["sampled_out"] == report["kept"] - 5

    # with near-duplicate removal off, the re-encoded images stay
    r = api.post("/api/v1/projects/al/mining/prepare", json={**body, "near_dup_threshold": None})
    off = wait_job(api, r.get_json()["id"])
    assert off["result"]["report"]["kept"] == report["kept"] + counts["near"]


def test_preparation_errors_name_what_is_wrong_and_store_nothing(api, al):
    before = len(api.get("/api/v1/versions?project=al").get_json()["versions"])
    r = api.post("/api/v1/projects/al/mining/prepare", json={"version_ids": [al["pool"]], "near_dup_threshold": 40})
    assert r.status_code == 400 and "near_dup_threshold 40" in r.get_json()["error"]
    r = api.post("/api/v1/projects/al/mining/prepare", json={"version_ids": [al["pool"]], "classes_in": ["hexagon"]})
    assert r.status_code in (400, 404) and "hexagon" in r.get_json()["error"]
    r = api.post("/api/v1/projects/al/mining/prepare", json={"version_ids": []})
    assert r.status_code == 400
    # everything already used: the job fails with the reason, no version is left behind
    r = api.post("/api/v1/projects/al/mining/prepare", json={"version_ids": [al["pool"]],
                                                             "exclude_version_ids": [al["pool"]]})
    assert r.status_code == 202
    job = wait_job(api, r.get_json()["id"])
    assert job["state"] == "failed"
    assert "no images left after preparation" in job["error"] and f"used: {SMALL['pool']}" in job["error"]
    assert len(api.get("/api/v1/versions?project=al").get_json()["versions"]) == before


def test_near_duplicate_search_is_greedy_and_vectorised():
    from hub.mining.prepare import near_duplicates

    hashes = {"a": 0b1111, "b": 0b1110, "c": 0xFFFF_0000, "d": -1, "e": -2}  # d, e: all bits / all but one
    used = np.array([0xFFFF_0001], dtype=np.uint64)
    dropped = near_duplicates(["a", "b", "c", "d", "e"], hashes, 1, used)
    assert dropped == {"b": ("near_duplicate", "a"), "c": ("near_duplicate_of_used", None),
                       "e": ("near_duplicate", "d")}
