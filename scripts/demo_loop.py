"""The whole loop on embedded defaults, stage by stage, as a user would run it (called by scripts/demo.sh).

workspace -> hub (embedded broker, local jobs) -> sample data -> train -> evaluate on held-out images ->
convert to int8 ONNX + OpenVINO int8 (each validated) -> provision a device -> start its agent (a separate
process) -> publish + deploy the int8 package -> held-out images to the agent's /v1/detect -> prediction
records and selected frames back at the hub -> mine the top-k of those frames -> summary, hub URL and login.

Every stage prints what it does and the ``ymir-hub`` commands it runs (they work the same by hand); a failure
names the stage and why, and leaves the workspace as it was for a second run, which reuses what the first
made (data, model, packages, device, algorithm). ``--quick`` makes everything small (about 3 minutes).

Settings: YMIR_HOME (workspace, default ./ymir-workplace), DEMO_PORT (hub, 8080), DEMO_MQTT_PORT (embedded
broker, 18830), DEMO_AGENT_PORT (agent HTTP, 18090), DEMO_EPOCHS (training epochs), DEMO_SERVE=0 (stop at the
summary instead of keeping the hub up).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLASSES = ["circle", "square", "triangle"]
PROJECT = "shapes"
DEVICE = "demo-cam"

FULL = {"train": 400, "val": 100, "heldout": 60, "epochs": None, "topk": 8, "targets": "onnx-int8,openvino-int8"}
QUICK = {"train": 160, "val": 40, "heldout": 24, "epochs": 20, "topk": 5, "targets": "onnx-int8,openvino-int8"}


class StageFailed(Exception):
    pass


class Demo:
    def __init__(self, args):
        self.quick = args.quick
        self.sizes = QUICK if args.quick else FULL
        self.home = Path(os.environ.get("YMIR_HOME") or ROOT / "ymir-workplace").resolve()
        self.port = int(os.environ.get("DEMO_PORT", "8080"))
        self.mqtt_port = int(os.environ.get("DEMO_MQTT_PORT", "18830"))
        self.agent_port = int(os.environ.get("DEMO_AGENT_PORT", "18090"))
        self.epochs = os.environ.get("DEMO_EPOCHS") or self.sizes["epochs"]
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.stage = ""
        self.summary: dict = {}
        self.token = ""

    # -- helpers ------------------------------------------------------------------------------------------
    def say(self, stage: str, what: str) -> None:
        self.stage = stage
        print(f"\n== {stage}: {what}", flush=True)

    def hub(self, *args: str, as_json: bool = True):
        """Run ``ymir-hub --home HOME ARGS`` (shown), progress on stderr; its JSON (or text) back."""
        cmd = [str(BIN / "ymir-hub"), "--home", str(self.home), *args, *(["--json"] if as_json else [])]
        print("$ ymir-hub " + " ".join(shlex.quote(a) for a in args), flush=True)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=self.env())
        if r.returncode != 0:
            raise StageFailed(f"`ymir-hub {' '.join(args)}` exited {r.returncode}: {r.stdout.strip()[-500:]}")
        return json.loads(r.stdout) if as_json else r.stdout

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("YMIR_AGENT_")}
        env.update(YMIR_HOME=str(self.home), YMIR_BROKER_LISTEN=f"127.0.0.1:{self.mqtt_port}",
                   YMIR_PUBLIC_URL=self.url, YMIR_FLEET="1")
        return env

    def api(self, method: str, path: str, **kw):
        r = requests.request(method, self.url + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=30,
                             **kw)
        if r.status_code >= 400:
            raise StageFailed(f"{method} {path}: HTTP {r.status_code} {r.text[:300]}")
        return r.json()

    def wait(self, what: str, check, timeout: float, proc_log: Path | None = None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            for p in self.procs:
                if p.poll() is not None:
                    raise StageFailed(f"{p.args[0]} exited ({p.returncode}) while waiting for {what}"
                                      + (f"; its log:\n{_tail(proc_log)}" if proc_log else ""))
            time.sleep(0.5)
        raise StageFailed(f"{what}: not after {timeout:.0f} s" + (f"; log:\n{_tail(proc_log)}" if proc_log else ""))

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        self.procs.clear()

    # -- stages -------------------------------------------------------------------------------------------
    def workspace(self) -> None:
        self.say("workspace", f"{self.home} (hub.db, assets, models, jobs)")
        login = self.home / ".demo-login"
        if not (self.home / "hub.db").exists():
            password = secrets.token_urlsafe(9)
            self.hub("init", "--admin-password", password, as_json=False)
            login.write_text(json.dumps({"user": "admin", "password": password}))
            login.chmod(0o600)
        info = json.loads(login.read_text()) if login.exists() else {"user": "admin", "password": "(set at init)"}
        if not info.get("token"):
            info["token"] = self.hub("user", "token", "admin", "--label", "demo")["token"]
            login.write_text(json.dumps(info))
        self.login, self.token = info, info["token"]
        known = {c["name"] for c in self.hub("class", "list")}
        for c in CLASSES:
            if c not in known:
                self.hub("class", "add", c)
        if PROJECT not in {p["name"] for p in self.hub("project", "list")}:
            self.hub("project", "create", PROJECT, "--classes", ",".join(CLASSES))

    def start_hub(self) -> None:
        self.say("hub", f"serving {self.url} with its embedded MQTT broker on 127.0.0.1:{self.mqtt_port} "
                        "and the local job backend")
        for port, who in ((self.port, "DEMO_PORT"), (self.mqtt_port, "DEMO_MQTT_PORT")):
            if _taken(port):
                raise StageFailed(f"port {port} is in use (another hub or demo?); stop it or set {who}")
        log = self.home / "demo-hub.log"
        out = open(log, "ab")
        self.procs.append(subprocess.Popen([str(BIN / "ymir-hub"), "--home", str(self.home), "serve", "--port",
                                            str(self.port)], stdout=out, stderr=subprocess.STDOUT, env=self.env(),
                                           start_new_session=True))
        self.wait("the hub answering", lambda: _answers(self.url + "/login"), 60, log)
        print(f"hub up (log {log})")

    def data(self) -> None:
        self.say("data", "generate and import synthetic shape scenes: train, val and held-out sets")
        versions: dict = {}
        for v in self.hub("dataset", "list", "--project", PROJECT):
            if v["state"] == "ready" and v["operation"] != "infer":
                versions.setdefault(v["group_name"], v)
        self.versions = {}
        for name, seed in (("train", 1), ("val", 2), ("heldout", 7)):
            if name not in versions:
                path = self.home / "sharing" / f"shapes-{name}.zip"
                path.parent.mkdir(parents=True, exist_ok=True)
                self.hub("sample-data", "--out", str(path), "--images", str(self.sizes[name]), "--seed", str(seed))
                versions[name] = {"id": self.hub("dataset", "import", "--project", PROJECT, "--zip", str(path),
                                                 "--name", name)["version_id"]}
            self.versions[name] = versions[name]["id"]
        print("versions:", ", ".join(f"{k} {v}" for k, v in self.versions.items()))

    def train(self) -> None:
        self.say("train", "the built-in detector, as a job (progress below)")
        models = [m for m in self.hub("model", "list", "--project", PROJECT) if m["name"] == "shapes-detector"]
        if models:
            self.model, metrics = models[0]["model_id"], models[0]["metrics"]
            print(f"model {self.model} already trained")
        else:
            extra = ["--set", f"epochs={self.epochs}"] if self.epochs else []
            t0 = time.monotonic()
            out = self.hub("train", "--project", PROJECT, "--train", str(self.versions["train"]), "--val",
                           str(self.versions["val"]), "--name", "shapes-detector", *extra, "--wait")
            self.model, metrics = out["model_id"], out["metrics"]
            self.summary["training_s"] = time.monotonic() - t0
        self.summary["val_map50"] = _find(metrics, "mAP50") or _find(metrics, "map50")
        print(f"model {self.model}: mAP@0.5 on val {_fmt(self.summary['val_map50'])}")

    def evaluate(self) -> None:
        self.say("evaluate", "run the model over the held-out set and score it against its ground truth")
        preds = [v for v in self.hub("dataset", "list", "--project", PROJECT)
                 if v["operation"] == "infer" and v["state"] == "ready" and v["group_name"] == "heldout"
                 and (v.get("source") or {}).get("model_id") == self.model]
        if not preds:
            self.hub("infer", "--model", str(self.model), "--dataset", str(self.versions["heldout"]), "--wait",
                     as_json=False)
            preds = [v for v in self.hub("dataset", "list", "--project", PROJECT)
                     if v["operation"] == "infer" and v["state"] == "ready" and v["group_name"] == "heldout"]
        ev = self.hub("evaluate", "--pred", str(preds[-1]["id"]), "--gt", str(self.versions["heldout"]))
        self.summary["heldout_map50"] = _find(ev, "mAP50")
        print(f"held-out mAP@0.5 {self.summary['heldout_map50']:.3f}")

    def convert(self) -> None:
        self.say("convert", f"{self.sizes['targets']}: each validated against the fp32 model (mAP drop, latency)")
        packages = [p for p in self.hub("model", "packages", str(self.model)) if p["status"] != "rejected"]
        if not packages:
            out = self.hub("model", "convert", str(self.model), "--targets", self.sizes["targets"], "--wait")
            packages = out["packages"]
        self.packages = packages
        for p in packages:
            print(f"  {p['target']:<14} {p['status']:<9} mAP@0.5 {_pts(p['accuracy'].get('mAP50'))} "
                  f"(Δ {p['accuracy'].get('delta_mAP50', 0):+.2f} points)  p50 {p['speed'].get('latency_ms_p50', 0):.2f} ms")
        onnx = [p for p in packages if p["target"] == "onnx-int8"]
        if not onnx:
            raise StageFailed("no accepted onnx-int8 package to deploy")
        self.package = onnx[0]

    def device(self) -> None:
        self.say("device", f"provision {DEVICE} and start its agent as a separate process")
        folder = self.home / "demo-agent"
        folder.mkdir(exist_ok=True)
        cfg = folder / "agent.toml"
        if DEVICE not in {d["id"] for d in self.hub("device", "list")}:
            token = self.hub("device", "add", DEVICE, "--name", "Demo camera", "--project", PROJECT)["token"]
        elif cfg.exists() and "device_token" in cfg.read_text():
            token = next(ln.split("=", 1)[1].strip().strip('"') for ln in cfg.read_text().splitlines()
                         if ln.startswith("device_token"))
        else:
            token = self.hub("device", "token", DEVICE)["token"]
        if _taken(self.agent_port):
            raise StageFailed(f"port {self.agent_port} is in use; stop what holds it or set DEMO_AGENT_PORT")
        key = self.api("GET", "/api/v1/fleet/public-key")["hub_public_key"]  # packages must carry its signature
        values = {"device_id": DEVICE, "device_token": token, "hub_public_key": key, "hub_url": self.url,
                  "mqtt_url": f"mqtt://127.0.0.1:{self.mqtt_port}", "store_dir": str(folder / "store"),
                  "http_bind": f"127.0.0.1:{self.agent_port}", "uplink_interval": 1.0, "mining_enabled": True,
                  "mining_window": 5.0, "mining_top_k": 3, "mining_rate_per_min": 120.0,
                  "mining_control_share": 0.1, "metrics_interval": 2.0}
        cfg.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
        cfg.chmod(0o600)
        log = folder / "agent.log"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("YMIR_")}, "OMP_NUM_THREADS": "1"}
        self.procs.append(subprocess.Popen([str(BIN / "ymir-agent"), "run", "--config", str(cfg)],
                                           stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env,
                                           start_new_session=True))
        self.wait(f"{DEVICE} online at the hub", lambda: self.api("GET", f"/api/v1/devices/{DEVICE}")["online"], 60,
                  log)
        self.agent_log = log
        print(f"agent up: http://127.0.0.1:{self.agent_port} (log {log})")

    def deploy(self) -> None:
        self.say("deploy", f"publish package {self.package['id']} (onnx-int8) and roll it out to {DEVICE}")
        artifact = self.home / "artifacts" / f"{self.package['sha256']}.zip"
        algos = [a for a in self.hub("algorithm", "list") if a["sha256"] == self.package["sha256"]]
        algo = algos[0] if algos else self.hub("algorithm", "publish", "--package", str(artifact), "--name",
                                               "shapes", "--project", PROJECT)
        self.algo = algo
        dep = self.hub("deploy", str(algo["id"]), "--target", f"device:{DEVICE}", "--conf", "0.25", "--wait",
                       "--timeout", "180")
        if dep["state"] != "completed":
            raise StageFailed(f"deployment {dep['id']} ended {dep['state']}; agent log:\n{_tail(self.agent_log)}")
        self.deployment = dep

    def detect(self) -> None:
        self.say("detect", f"send the held-out images to the agent's /v1/detect ({self.sizes['heldout']} images)")
        before = self.api("GET", f"/api/v1/devices/{DEVICE}/predictions")["count"]
        frames_before = self._frames()
        uploads_before = self._uploads(fresh_after=time.time())
        latencies, boxes = [], 0
        with zipfile.ZipFile(self.home / "sharing" / "shapes-heldout.zip") as zf:
            for name in sorted(n for n in zf.namelist() if n.startswith("images/")):
                t0 = time.perf_counter()
                r = requests.post(f"http://127.0.0.1:{self.agent_port}/v1/detect", data={"model": self.algo["name"]},
                                  files={"image": (Path(name).name, zf.read(name), "image/jpeg")}, timeout=30)
                latencies.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise StageFailed(f"/v1/detect {name}: HTTP {r.status_code} {r.text[:200]}")
                boxes += len(r.json().get("detections", []))
        sent = len(latencies)
        got = self.wait(f"{sent} prediction records at the hub",
                        lambda: (n := self.api("GET", f"/api/v1/devices/{DEVICE}/predictions")["count"]) - before
                        >= sent and n - before, 60, self.agent_log)
        # A frame the hub already holds (a second run sends the same images) is taken but adds no asset, so the
        # wait counts the agent's delivered uploads (its metrics at the hub), not the size of edge captures.
        self.wait("selected frames at the hub", lambda: self._uploads() > uploads_before, 60, self.agent_log)
        time.sleep(7)  # the agent's mining window (5 s) closes and its last picks arrive
        uploads = self._uploads(fresh_after=time.time())
        frames = self._frames()
        latencies.sort()
        self.summary.update(sent=sent, boxes=boxes, records=got, uploads=uploads - uploads_before,
                            frames=frames - frames_before, frames_total=frames,
                            detect_p50_ms=latencies[len(latencies) // 2])
        print(f"{sent} images -> {boxes} boxes; {got} records and {uploads - uploads_before} selected frames back at "
              f"the hub ({frames - frames_before} new to edge captures)")

    def _uploads(self, fresh_after: float | None = None) -> int:
        """Frames the agent has delivered to the hub so far, as its latest metrics at the hub say; with
        ``fresh_after``, first wait for metrics sent after that time (the agent sends them every 2 s)."""
        def metrics() -> dict:
            return self.api("GET", f"/api/v1/devices/{DEVICE}")["metrics"] or {}
        if fresh_after is not None:
            self.wait("fresh metrics from the agent", lambda: (metrics().get("ts") or 0) > fresh_after, 30,
                      self.agent_log)
        return int(((metrics().get("outbox") or {}).get("sent") or {}).get("capture") or 0)

    def _frames(self) -> int:
        groups = self.api("GET", f"/api/v1/projects/{PROJECT}/datasets")["datasets"]
        edge = [g for g in groups if g["name"] == "edge captures"]
        self.edge_versions = [v["id"] for v in edge[0]["versions"] if v["state"] == "ready"] if edge else []
        return sum(v["images"] for v in edge[0]["versions"]) if edge else 0

    def mine(self) -> None:
        self.say("mine", "rank the frames the device sent back by how useful labeling them would be (aldd)")
        pool = self.edge_versions[-1]
        images = self.api("GET", f"/api/v1/versions/{pool}")["images"]
        topk = min(self.sizes["topk"], images)
        out = self.hub("mine", "--model", str(self.model), "--dataset", str(pool), "--topk", str(topk), "--wait",
                       "--name", "demo-mined")
        assets = self.api("GET", f"/api/v1/versions/{out['version_id']}/assets?limit=100")["assets"]
        top = sorted(assets, key=lambda a: float(a["tags"].get("mining_score", 0)), reverse=True)
        self.summary["mined"] = {"version_id": out["version_id"], "pool": out["pool"],
                                 "top": [(a["sha1"][:12], float(a["tags"].get("mining_score", 0)),
                                          a["tags"].get("reason", ""), a["tags"].get("device", "")) for a in top[:5]]}

    def report(self) -> None:
        self.say("summary", "the loop in figures")
        s = self.summary
        rows = [("training", f"{s['training_s']:.0f} s" if "training_s" in s else "reused"),
                ("mAP@0.5 on val (training)", _fmt(s.get("val_map50"))),
                ("mAP@0.5 on held-out", _fmt(s.get("heldout_map50")))]
        for p in self.packages:
            acc, sp = p["accuracy"], p["speed"]
            rows.append((f"{p['target']} vs fp32",
                         f"mAP@0.5 {_pts(acc.get('mAP50'))} vs {_pts((acc.get('source') or {}).get('mAP50'))} "
                         f"(Δ {acc.get('delta_mAP50', 0):+.2f} points), "
                         f"p50 {sp.get('latency_ms_p50', 0):.2f} ms vs {(sp.get('source') or {}).get('latency_ms_p50', 0):.2f} ms "
                         f"({sp.get('speedup_vs_source', 0):.2f}x)"))
        rows += [("deployed", f"algorithm {self.algo['id']} ({self.package['target']}) on {DEVICE}, "
                              f"deployment {self.deployment['id']} {self.deployment['state']}"),
                 ("agent /v1/detect", f"{s['sent']} images, {s['boxes']} boxes, p50 {s['detect_p50_ms']:.1f} ms "
                                      "(HTTP round trip)"),
                 ("back at the hub", f"{s['records']} prediction records, {s['uploads']} selected frames "
                                     f"({s['frames']} new, {s['frames_total']} in edge captures)"),
                 ("mined", f"version {s['mined']['version_id']}: top {len(s['mined']['top'])} of "
                           f"{s['mined']['pool']} frames")]
        rows += [(f"  #{i + 1}", f"{sha} score {score:.4f} ({reason or 'selected'} on {dev})")
                 for i, (sha, score, reason, dev) in enumerate(s["mined"]["top"])]
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"  {k:<{width}}  {v}")
        print(f"\nhub at {self.url}  login: {self.login['user']} / {self.login['password']}")


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) else "n/a"


def _pts(v) -> str:
    """A package's mAP (percentage points, as converters report it) on the 0-1 scale of the other figures."""
    return _fmt(v / 100 if isinstance(v, int | float) else None)


def _find(d, key):
    """The first value under ``key`` anywhere in a nested JSON document."""
    if isinstance(d, dict):
        if key in d and isinstance(d[key], int | float):
            return d[key]
        for v in d.values():
            got = _find(v, key)
            if got is not None:
                return got
    if isinstance(d, list):
        for v in d:
            got = _find(v, key)
            if got is not None:
                return got
    return None


def _taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _tail(path: Path | None, lines: int = 15) -> str:
    if not path or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Small data and a short training (about 3 minutes).")
    args = ap.parse_args()
    demo = Demo(args)
    demo.home.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        demo.workspace()
        demo.start_hub()
        demo.data()
        demo.train()
        demo.evaluate()
        demo.convert()
        demo.device()
        demo.deploy()
        demo.detect()
        demo.mine()
        demo.report()
        if os.environ.get("DEMO_SERVE", "1") != "0":
            print("(Ctrl-C stops the hub and the agent)", flush=True)
            while all(p.poll() is None for p in demo.procs):
                time.sleep(1)
        return 0
    except StageFailed as exc:
        print(f"\ndemo failed at stage '{demo.stage}': {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        demo.stop()


if __name__ == "__main__":
    sys.exit(main())
