"""The user guide's screenshots, taken from a real hub in headless Chromium.

A small hub is filled through its API the way a user would fill it (project, four imported datasets,
a 2-epoch training, inference on the validation set, mining, a labeling task, a published algorithm, a
real agent process a deployment goes healthy on, an iteration started from the trained model); then every
page the guide shows is visited and saved as a PNG. Each page must render without a script error and
each screenshot must not be blank. The PNGs go to a temp folder, or, with ``YMIR_DOCS_SCREENSHOTS=1``
(``scripts/docs_screenshots.sh``), to ``docs/img/`` (how the committed ones are made)."""

from __future__ import annotations

import io
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "hub" / "fleet"))
sys.path.insert(0, str(TESTS))  # fixtures_mqtt
from fixtures_mqtt import mosquitto  # noqa: E402,F401
from fleet_helpers import AgentProc, Api, HubServer, wait_until, write_agent_config  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.mqtt, pytest.mark.slow]

ROOT = TESTS.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1200, "height": 760}
PASSWORD = "docs-pass-123"
#: small enough for 2 CPU cores, still a model with a training curve
TRAINING = {"epochs": 30, "input_size": 160, "batch_size": 8, "save_period": 0, "seed": 0}


def _out_dir(tmp_path: Path) -> Path:
    if os.environ.get("YMIR_DOCS_SCREENSHOTS") == "1":
        return ROOT / "docs" / "img"
    return tmp_path / "img"


def _hub(tmp_path: Path, broker_url: str):
    """A fresh workspace (admin + token) and a hub that runs its jobs and its fleet."""
    from hub import auth, create_app
    from hub.config import load_settings
    from hub.store import users as user_store
    from hub.store.workspace import Workspace

    settings = load_settings(tmp_path / "ws", env={}, testing=True, secret_key="docs-secret", fleet_enabled=True,
                             mqtt_url=broker_url)
    ws = Workspace.create(settings)
    auth.add_user(ws.database, "admin", PASSWORD, "admin")
    token = user_store.create_token(ws.database, user_store.get_user_by_name(ws.database, "admin")["id"], "docs")
    ws.close()
    return create_app(settings), token


def _wait_job(api: Api, job_id: str, timeout: float = 120) -> dict:
    job = wait_until(lambda: (lambda j: j if j["state"] in ("done", "failed", "cancelled") else None)(
        api.ok(api.get(f"/api/v1/jobs/{job_id}"))), timeout, interval=0.3, what=f"job {job_id}")
    assert job["state"] == "done", job
    return job


def _import(api: Api, path: Path, name: str) -> int:
    with open(path, "rb") as f:
        r = api.ok(api.post("/api/v1/projects/shapes/datasets/import", files={"file": (path.name, f)},
                            data={"name": name}), 202)
    v = wait_until(lambda: (lambda v: v if v["state"] != "importing" else None)(
        api.ok(api.get(f"/api/v1/versions/{r['version_id']}"))), 60, what=f"import of {name}")
    assert v["state"] == "ready", v
    return v["id"]


def _fill(api: Api, tmp_path: Path) -> dict:
    """Everything the pages show, made through the API; returns the ids the pages need."""
    from detkit.synth import write_sample_zip

    ids: dict = {}
    for name in ("circle", "square", "triangle"):
        api.ok(api.post("/api/v1/classes", json={"name": name, "aliases": ["round"] if name == "circle" else []}),
               201)
    api.ok(api.post("/api/v1/projects", json={"name": "shapes", "description": "Shapes on a conveyor belt",
                                              "classes": ["circle", "square", "triangle"]}), 201)
    for name, n, seed in (("train", 40, 1), ("val", 8, 2), ("test", 6, 4), ("pool", 12, 3)):
        ids[name] = _import(api, write_sample_zip(tmp_path / f"{name}.zip", images=n, seed=seed), name)
    api.ok(api.get(f"/api/v1/versions/{ids['train']}/analysis"))
    job = api.ok(api.post("/api/v1/projects/shapes/train", json={
        "train_version_id": ids["train"], "val_version_id": ids["val"], "config": TRAINING, "name": "shapes"}), 202)
    ids["train_job"] = job["id"]
    t = time.monotonic()
    ids["model"] = _wait_job(api, job["id"], 180)["result"]["model_id"]
    print(f"\ntraining {time.monotonic() - t:.0f} s:", api.ok(api.get(f"/api/v1/models/{ids['model']}")).get("metrics"))
    jobs = api.ok(api.post("/api/v1/infer", json={"model_id": ids["model"], "version_ids": [ids["val"]]}), 202)
    ids["pred"] = _wait_job(api, jobs["jobs"][0]["id"])["result"]["version_id"]
    job = api.ok(api.post("/api/v1/projects/shapes/mining", json={
        "model_id": ids["model"], "version_ids": [ids["pool"]], "topk": 6, "name": "mined"}), 202)
    ids["mined"] = _wait_job(api, job["id"])["result"]["version_id"]
    task = api.ok(api.post("/api/v1/projects/shapes/labeling/tasks", json={"version_id": ids["mined"]}), 201)
    ids["task"] = task["id"]
    algo = api.ok(api.post("/api/v1/algorithms", json={"model_id": ids["model"], "title": "Shapes detector"}), 201)
    ids["algorithm"] = algo["id"]
    return ids


def _deploy(api: Api, ids: dict, tmp_path: Path, broker_url: str, hub_url: str) -> AgentProc:
    """A provisioned device running a real agent, and a deployment that goes healthy on it."""
    dev = api.ok(api.post("/api/v1/devices", json={"id": "cam-1", "name": "Belt camera", "tags": ["belt"],
                                                   "project": "shapes"}), 201)
    cfg, port = write_agent_config(tmp_path / "agent", "cam-1", dev["token"], broker_url, hub_url)
    agent = AgentProc(tmp_path / "agent", cfg, port)
    wait_until(lambda: api.ok(api.get("/api/v1/devices/cam-1"))["online"], 30, what="the device online")
    dep = api.ok(api.post("/api/v1/deployments", json={"algorithm_id": ids["algorithm"], "target": "device:cam-1",
                                                       "settings": {"conf": 0.3}}), 201)
    ids["deployment"] = dep["id"]
    wait_until(lambda: api.ok(api.get(f"/api/v1/deployments/{dep['id']}"))["state"] == "completed", 60,
               what="the deployment completed")
    import requests

    frame = (tmp_path / "frame.jpg")
    _first_image(tmp_path / "val.zip", frame)
    for _ in range(5):  # a few requests, so the device's metrics and predictions are not empty
        with open(frame, "rb") as f:
            assert requests.post(f"{agent.url}/v1/detect", files={"image": f}, timeout=30).status_code == 200
    wait_until(lambda: api.ok(api.get("/api/v1/devices/cam-1/metrics"))["metrics"], 20, what="device metrics")
    return agent


def _first_image(zip_path: Path, out: Path) -> None:
    import zipfile

    with zipfile.ZipFile(zip_path) as zf:
        name = next(n for n in zf.namelist() if n.startswith("images/"))
        out.write_bytes(zf.read(name))


def _start_iteration(api: Api, ids: dict) -> None:
    api.ok(api.post("/api/v1/projects/shapes/iteration", json={
        "training_version_id": ids["train"], "mining_version_id": ids["pool"], "validation_version_id": ids["val"],
        "test_version_id": ids["test"], "initial_model_id": ids["model"], "goal_map": 0.9}), 201)
    # round 0 with an initial model only tests it (an inference job on the test set); then round 1 opens
    api.ok(api.post("/api/v1/projects/shapes/iteration/steps/training", json={}), 202)

    def round0_done():
        data = api.ok(api.get("/api/v1/projects/shapes/iteration"))
        return data["rounds"][0]["state"] != "active" and data

    wait_until(round0_done, 120, interval=0.5, what="iteration round 0")
    api.ok(api.post("/api/v1/projects/shapes/iteration/next", json={}), 201)


class Shooter:
    """Visits pages in one logged-in Chromium page and saves viewport screenshots (palette PNGs)."""

    def __init__(self, page, base: str, out: Path):
        self.page, self.base, self.out = page, base, out
        self.errors: list[str] = []
        self.saved: list[Path] = []
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))

    def login(self) -> None:
        self.page.goto(f"{self.base}/login")
        self.page.fill("input[name=username]", "admin")
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{self.base}/projects")

    def shot(self, name: str, path: str, wait_for: str | None = None, before=None) -> Path:
        from PIL import Image

        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        self.page.wait_for_load_state("networkidle")
        if wait_for:
            self.page.wait_for_selector(wait_for)
        if before:
            before(self.page)
        self.page.wait_for_timeout(400)  # chart animations settle
        img = Image.open(io.BytesIO(self.page.screenshot(type="png"))).convert("RGB")
        colors = img.getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 8, f"{name}: the screenshot looks blank ({len(colors)} colours)"
        target = self.out / f"{name}.png"
        img.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
        self.saved.append(target)
        return target


def test_docs_screenshots(tmp_path, mosquitto):  # noqa: F811
    playwright = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("chromium is not installed")
    out = _out_dir(tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    app, token = _hub(tmp_path, mosquitto.url)
    server = HubServer(app).start()
    api = Api(server.url, token)
    agent = None
    try:
        ids = _fill(api, tmp_path)
        agent = _deploy(api, ids, tmp_path, mosquitto.url, server.url)
        t_filled = time.monotonic()
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(30_000)
            s = Shooter(page, server.url, out)
            s.login()
            s.shot("projects", "/projects")
            s.shot("classes", "/classes")
            s.shot("project", "/projects/1")
            s.shot("import", "/projects/1/datasets/import")
            s.shot("version", f"/versions/{ids['train']}", wait_for=".thumbs img, img")
            s.shot("analysis", f"/projects/1/analysis?v={ids['train']}&v={ids['val']}", wait_for="canvas")
            s.shot("labeling", "/projects/1/labeling")
            s.shot("annotator", f"/labeling/tasks/{ids['task']}", wait_for="#annotator canvas")
            s.shot("mining", "/projects/1/mining")
            s.shot("mined", f"/mining/versions/{ids['mined']}")
            s.shot("training", "/projects/1/training")
            s.shot("job", f"/jobs/{ids['train_job']}", wait_for="#history-chart")
            s.shot("models", "/projects/1/models")
            s.shot("model", f"/models/{ids['model']}", wait_for="#history-chart")
            s.shot("diagnosis", f"/projects/1/diagnosis?pred={ids['pred']}", wait_for="#map-table",
                   before=lambda p: p.locator("#map-table").scroll_into_view_if_needed())
            s.shot("diagnosis-labels", f"/versions/{ids['pred']}/diagnosis", wait_for="#label-counts")
            s.shot("iteration-setup", "/projects/1/iteration", wait_for="#iteration-setup")
            _start_iteration(api, ids)
            s.shot("iteration", "/projects/1/iteration", wait_for="#active-round")
            s.shot("images", "/admin/images")
            s.shot("algorithms", "/deployment/algorithms")
            s.shot("algorithm", f"/deployment/algorithms/{ids['algorithm']}")
            s.shot("deployment", "/deployment", wait_for="#devices tr[data-device='cam-1']")
            s.shot("rollout", f"/deployment/deployments/{ids['deployment']}",
                   wait_for="#rows tr[data-device='cam-1']")
            s.shot("device", "/deployment/devices/cam-1", wait_for="#metrics-chart")
            s.shot("jobs", "/jobs")
            context.close()
            browser.close()
        assert not s.errors, s.errors
        total = sum(p.stat().st_size for p in s.saved)
        print(f"\n{len(s.saved)} screenshots, {total / 1e6:.2f} MB in {out}; data {t_filled - t0:.0f} s, "
              f"pages {time.monotonic() - t_filled:.0f} s")
        assert total < 1_500_000, f"screenshots take {total} bytes: keep docs/img small"
    finally:
        if agent:
            agent.stop()
        server.stop()
        app.extensions["ymir"].close()
