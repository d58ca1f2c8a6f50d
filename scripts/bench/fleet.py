"""Benchmark: the hub's fleet with N simulated agents on a real Mosquitto.

    .venv/bin/python scripts/bench/fleet.py [--agents 1000] [--procs 4] [--batches 20] [--records 50]
        [--batch-percent 25] [--page-users 20] [--think-s 1.0] [--out bench-out/fleet.json]

A hub (``create_app`` with its fleet service, as ``ymir-hub serve`` runs it) connects to a Mosquitto
child process. ``--procs`` processes run ``--agents`` light paho clients between them (MQTT 3.1.1,
one select loop per process, no thread per client). Each simulated agent publishes a retained
``online`` status, subscribes to its ``desired`` topic, answers every new desired revision with
``reported`` ``downloading`` then ``healthy`` (as a real agent does once its model loaded), and
sends one metrics message. The hub's pages are served over HTTP by waitress with 8 threads, as
``ymir-hub serve`` serves them, in the hub's own process; ``--page-users`` simulated users (threads
of one more process, each logged in with its own session cookie) load the fleet pages in turn (the
deployment overview, a random device's page, the algorithm list, the project list) with ``--think-s``
seconds between one page and the next, through every phase; each page's time (request sent to the
last byte read) is reported per phase as p50/p95/p99. Phases, timed:

1. **connect**: every agent connected and seen online by the hub;
2. **ingest**: every agent sends ``--batches`` prediction batches of ``--records`` records (QoS 1),
   as fast as the broker takes them; the clock stops when the hub's SQLite holds every record.
   Zero loss and zero duplicates: every device must hold exactly batches x records records, each
   record id once (redelivered QoS 1 batches are counted in ``duplicate_records`` and stored once);
3. **rollout**: deploy an algorithm to all devices in batches of ``--batch-percent`` % (success
   threshold 1.0); the clock stops when the deployment is ``completed``.

Prints one JSON object (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import select
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PREFIX = "ymir/v1"


def _agent_worker(url: str, ids: list[str], batches: int, records: int, go_stream, done_q) -> None:
    """One process: ``ids`` simulated agents on one select loop."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from agent import protocol

    host, port = url.split("//")[1].split(":")
    clients: dict[str, mqtt.Client] = {}
    last_rev: dict[str, int] = {}
    seq = {d: 0 for d in ids}

    def on_message(client, userdata, msg):
        dev = userdata
        try:
            desired = protocol.Desired.parse(msg.payload)
        except protocol.ProtocolError:
            return
        for dep in desired.deployments:
            if dep.revision > last_rev.get(f"{dev}/{dep.name}", -1):
                last_rev[f"{dev}/{dep.name}"] = dep.revision
                for state in ("downloading", "healthy"):
                    seq[dev] += 1
                    client.publish(protocol.topic(PREFIX, dev, "reported"),
                                   protocol.encode(protocol.reported(seq[dev], dep.name, dep.revision, state,
                                                                     sha256=dep.sha256)), qos=1)

    for dev in ids:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ymir-agent-{dev}", protocol=mqtt.MQTTv311,
                        userdata=dev)
        c.max_inflight_messages_set(50)
        c.max_queued_messages_set(0)
        c.will_set(protocol.topic(PREFIX, dev, "status"), protocol.encode(protocol.status(dev, "offline")), 1, True)
        c.on_message = on_message
        c.connect(host, int(port), keepalive=120)
        c.subscribe(protocol.topic(PREFIX, dev, "desired"), qos=1)
        c.publish(protocol.topic(PREFIX, dev, "status"), protocol.encode(protocol.status(dev, "online")), 1, True)
        c.publish(protocol.topic(PREFIX, dev, "metrics"), protocol.encode(protocol.metrics(
            inferences=10, errors=0, latency_ms={"p50": 3.0, "p95": 5.0}, outbox={"depth": 0})), 0)
        clients[dev] = c

    def pump(timeout: float) -> None:
        socks = {c.socket(): c for c in clients.values() if c.socket()}
        want_w = [s for s, c in socks.items() if c.want_write()]
        r, w, _ = select.select(list(socks), want_w, [], timeout)
        for s in r:
            socks[s].loop_read()
        for s in w:
            socks[s].loop_write()

    last_misc = time.monotonic()
    streamed = False
    done_q.put(("connected", len(ids)))
    while True:
        pump(0.05)
        if time.monotonic() - last_misc > 1.0:
            for c in clients.values():
                c.loop_misc()
            last_misc = time.monotonic()
        if not streamed and go_stream.is_set():
            streamed = True
            sent = 0
            infos = []
            for b in range(batches):
                for dev, c in clients.items():
                    recs = [{"id": f"{dev}-{b}-{i}", "ts": time.time(), "deployment": "bench", "revision": 1,
                             "detections": [{"box": [1, 2, 30, 40], "score": 0.9, "class_name": "circle"}],
                             "latency_ms": 4.2} for i in range(records)]
                    infos.append(c.publish(protocol.topic(PREFIX, dev, "predictions"),
                                           protocol.encode(protocol.prediction_batch(dev, b, recs)), qos=1))
                    sent += records
                pump(0)
            while not all(i.is_published() for i in infos):  # every PUBACK back: the broker has them all
                pump(0.05)
            done_q.put(("streamed", sent))
        if os.getppid() == 1:
            return


PAGES = ("/deployment", "/deployment/devices/{device}", "/deployment/algorithms", "/projects")


def _page_users(port: int, password: str, users: int, think_s: float, devices: list[str], stop, out_q) -> None:
    """One process: ``users`` threads, each a logged-in user loading pages until ``stop`` is set.
    Puts ``("ready", n)`` once all are logged in, then one ``("samples", [(t_wall, ms, path, status)])``."""
    import http.client
    import random
    import re
    import threading

    samples: list[tuple] = []
    lock = threading.Lock()
    ready = threading.Barrier(users + 1)

    def user(k: int) -> None:
        rnd = random.Random(k)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def get(path: str, cookie: str = "") -> tuple[int, dict, bytes]:
            conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()

        _, headers, body = get("/login")
        cookie = headers.get("Set-Cookie", "").split(";")[0]
        token = re.search(rb'name="csrf_token" value="([^"]+)"', body).group(1).decode()
        form = f"username=admin&password={password}&csrf_token={token}"
        conn.request("POST", "/login", body=form, headers={
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        r.read()
        if r.status != 302:
            raise SystemExit(f"page user {k}: login answered {r.status}")
        cookie = r.getheader("Set-Cookie", "").split(";")[0] or cookie
        ready.wait()
        time.sleep(rnd.random() * think_s)  # users do not click in step
        i = k
        while not stop.is_set():
            path = PAGES[i % len(PAGES)].format(device=rnd.choice(devices))
            i += 1
            t_wall, t = time.time(), time.perf_counter()
            status, _, _ = get(path, cookie)
            with lock:
                samples.append((t_wall, (time.perf_counter() - t) * 1000, path.split("/sim")[0], status))
            stop.wait(think_s)

    threads = [threading.Thread(target=user, args=(k,), daemon=True) for k in range(users)]
    for t in threads:
        t.start()
    ready.wait()
    out_q.put(("ready", users))
    for t in threads:
        t.join()
    out_q.put(("samples", samples))


def _page_stats(samples: list[tuple], phases: dict[str, tuple[float, float]]) -> dict:
    """p50/p95/p99/max page time per phase (a page counts in the phase its request started in)."""
    import numpy as np

    out = {}
    for name, (t0, t1) in phases.items():
        ms = np.array([s[1] for s in samples if t0 <= s[0] < t1])
        bad = sum(1 for s in samples if t0 <= s[0] < t1 and s[3] != 200)
        if ms.size:
            p50, p95, p99 = np.percentile(ms, [50, 95, 99])
            out[name] = {"pages": int(ms.size), "not_200": bad, "p50_ms": round(float(p50), 1),
                         "p95_ms": round(float(p95), 1), "p99_ms": round(float(p99), 1),
                         "max_ms": round(float(ms.max()), 1)}
    by_page: dict[str, list[float]] = {}
    t0, t1 = phases["ingest"]
    for s in samples:
        if t0 <= s[0] < t1:
            by_page.setdefault(s[2], []).append(s[1])
    out["ingest_by_page_p99_ms"] = {k: round(float(np.percentile(v, 99)), 1) for k, v in sorted(by_page.items())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--records", type=int, default=50)
    ap.add_argument("--batch-percent", type=float, default=25.0)
    ap.add_argument("--page-users", type=int, default=20, help="simulated users loading pages (0: none)")
    ap.add_argument("--think-s", type=float, default=1.0, help="each page user's pause between two pages")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "fleet.json"))
    args = ap.parse_args()

    from hub import auth, create_app
    from hub.config import apply_thread_switch, load_settings
    from hub.fleet import deployments as deps
    from hub.fleet.broker import EmbeddedMosquitto
    from hub.store import fleet as fleet_store
    from hub.store import fleet_algorithms as algo_store
    from hub.store import fleet_deployments as dep_store
    from hub.store import fleet_records as records_store
    from hub.store.workspace import Workspace

    tmp = Path(tempfile.mkdtemp(prefix="ymir-bench-fleet-"))
    broker = EmbeddedMosquitto(tmp / "mosquitto", "127.0.0.1", 0).start()
    settings = load_settings(tmp / "ws", env={k: v for k, v in os.environ.items() if k == "YMIR_THREAD_SWITCH_US"},
                             testing=True, secret_key="bench", fleet_enabled=True,
                             mqtt_url=broker.url, run_jobs=False)
    ws = Workspace.create(settings)
    auth.add_user(ws.database, "admin", "bench-pass-1", "admin")
    ids = [f"sim{i:05d}" for i in range(args.agents)]
    for d in ids:
        fleet_store.create_device(ws.database, d, d, ["bench"], f"token-{d}")
    algo_store.add_artifact(ws.database, "ab" * 32, "bench.zip", 1000)
    algo = algo_store.create_algorithm(ws.database, name="bench", title="bench", description="", project_id=None,
                                       model_id=None, stage="", sha256="ab" * 32, size=1000, backend="onnxruntime",
                                       precision="fp32", class_names=["circle"], manifest={}, owner_id=None)
    ws.close()
    app = create_app(settings)
    fleet = app.extensions["fleet"]
    db = app.extensions["ymir"].database
    result: dict = {"agents": args.agents, "procs": args.procs, "machine": f"{platform.machine()}, "
                    f"{os.cpu_count()} CPUs", "broker": "mosquitto (child process, loopback)",
                    "page_users": args.page_users, "think_s": args.think_s,
                    "thread_switch_us": settings.thread_switch_us}
    ctx = mp.get_context("fork")
    go = ctx.Event()
    q = ctx.Queue()
    procs = []
    spawn = mp.get_context("spawn")  # the page users' process starts clean, after the hub's threads run
    stop_pages, pages_q = spawn.Event(), spawn.Queue()
    phases: dict[str, tuple[float, float]] = {}
    try:
        if args.page_users:
            import threading

            import waitress

            apply_thread_switch(settings)  # as `ymir-hub serve` does
            server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)  # as `ymir-hub serve`
            threading.Thread(target=server.run, name="waitress", daemon=True).start()
            pager = spawn.Process(target=_page_users, args=(server.effective_port, "bench-pass-1", args.page_users,
                                                            args.think_s, ids, stop_pages, pages_q), daemon=True)
            pager.start()
            procs.append(pager)
            assert pages_q.get(timeout=120)[0] == "ready"
        t0 = time.perf_counter()
        w0 = time.time()
        for k in range(args.procs):
            p = ctx.Process(target=_agent_worker, args=(broker.url, ids[k::args.procs], args.batches, args.records,
                                                        go, q), daemon=True)
            p.start()
            procs.append(p)

        def online() -> int:
            return db.db.execute("SELECT count(*) FROM devices WHERE online = 1").fetchone()[0]

        while online() < args.agents:
            time.sleep(0.1)
            if time.perf_counter() - t0 > 300:
                raise SystemExit(f"only {online()} of {args.agents} agents online after 300 s")
        result["connect_s"] = round(time.perf_counter() - t0, 2)

        total = args.agents * args.batches * args.records
        t1 = time.perf_counter()
        w1 = time.time()
        phases["connect"] = (w0, w1)
        go.set()
        while records_store.count_records(db) < total:
            time.sleep(0.05)
            if time.perf_counter() - t1 > 600:
                break
        elapsed = time.perf_counter() - t1
        w2 = time.time()
        phases["ingest"] = (w1, w2)
        got = records_store.count_records(db)
        per_device = records_store.count_by_device(db)
        want = args.batches * args.records
        result.update(records_sent=total, records_stored=got, lost=total - got, ingest_s=round(elapsed, 2),
                      records_per_s=round(got / elapsed), ingest_counters=dict(fleet.ingest.counters),
                      devices_short=sum(1 for d in ids if per_device.get(d, 0) < want),
                      devices_over=sum(1 for d in ids if per_device.get(d, 0) > want),
                      duplicates_stored=sum(max(0, n - want) for n in per_device.values()))

        t2 = time.perf_counter()
        dep, _ = deps.deploy(db, algorithm_id=algo["id"], target="tag:bench", batch_percent=args.batch_percent,
                             success_threshold=1.0, max_failures=1)
        fleet.wake()
        while dep_store.get_deployment(db, dep["id"])["state"] == "running":
            time.sleep(0.1)
            if time.perf_counter() - t2 > 600:
                break
        final = dep_store.get_deployment(db, dep["id"])
        result.update(rollout_state=final["state"], rollout_batches=final["batches"],
                      rollout_s=round(time.perf_counter() - t2, 2), rollout_counts=final["counts"])
        phases["rollout"] = (w2, time.time())
        if args.page_users:
            stop_pages.set()
            kind, samples = pages_q.get(timeout=120)
            result["pages"] = _page_stats(samples, phases)
    finally:
        for p in procs:
            p.kill()
        app.extensions["ymir"].close()
        broker.stop()
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
