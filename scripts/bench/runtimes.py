"""Benchmark every runtime backend x precision on the built-in detector, in one run.

For each variant (onnxruntime fp32/int8, OpenVINO fp32/fp16/int8, the ``-u8`` int8 variants whose
graph takes the letterboxed uint8 NHWC image and normalises it inside, TensorRT fp16/int8 where
present): mAP@0.5 and mAP@.5:.95 on the validation scenes, batch-1 model latency p50/p95 (the
session alone, on its prepared input: float NCHW, or uint8 NHWC for ``-u8``), batch-1 end-to-end
p50/p95 (from the decoded uint8 HWC image to boxes: letterbox, normalisation where the runtime does
it, session, decode, NMS), images/s (batch 8), and the ratios to onnxruntime fp32. The goal it checks:
the fastest int8 variant at least 2x faster than onnxruntime fp32 while losing at most 1 point of
mAP@0.5 — in session latency (``met``, as before) and end to end (``met_e2e``).

    .venv/bin/python scripts/bench/runtimes.py --work bench-out/runtimes            # trains first
    .venv/bin/python scripts/bench/runtimes.py --model best.onnx --work bench-out/runtimes

Without ``--model`` it trains the built-in executor on the sample set (400 train / 100 val
seeded scenes; ~25 min on 2 cores) and reuses that model on later runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from converters.data import load_images  # noqa: E402
from converters.formats import TARGETS  # noqa: E402
from converters.validate import evaluate  # noqa: E402
from detkit.runtime import available_backends, load  # noqa: E402
from detkit.synth import write_sample_zip  # noqa: E402

log = logging.getLogger("bench.runtimes")
VARIANTS = ["onnx-fp32", "onnx-int8", "onnx-int8-u8", "openvino-fp32", "openvino-fp16", "openvino-int8",
            "openvino-int8-u8", "tensorrt-fp16", "tensorrt-int8"]
GOAL_SPEEDUP = 2.0
GOAL_MAX_DROP = 1.0  # mAP@0.5 points


def train_model(work: Path, epochs: int) -> Path:
    """Train the built-in executor on the sample task (400/100) and return its best ONNX."""
    task = work / "task"
    onnx = task / "out" / "models" / "best.onnx"
    if onnx.is_file():
        return onnx
    from executor.sample_task import make_training_task

    make_training_task(task, 400, 100, epochs=epochs)
    env = {**os.environ, "YMIR_IN_DIR": str(task / "in"), "YMIR_OUT_DIR": str(task / "out")}
    log.info("training the built-in detector (%d epochs) in %s", epochs, task)
    subprocess.run([sys.executable, "-m", "executor"], cwd=ROOT, env=env, check=True)
    return onnx


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _prepared(det, val, batch: int = 8):
    """The detector with a batch-1 and a batch-8 session input, both prepared once, and one decoded
    image (HWC uint8 RGB, what a camera or a JPEG decoder hands over) for the end-to-end timing."""
    pil = [s.image() for s in val.take(batch)]
    name = det.session.inputs[0].name
    x1, _ = det.preprocess(pil[:1])
    xb, _ = det.preprocess(pil)
    return det, {name: x1}, {name: xb}, np.asarray(pil[0])


def interleaved_timing(prepared: dict, rounds: int, per_round: int) -> dict:
    """Time every variant in turns (round-robin), so load from other processes hits all alike."""
    lat = {k: [] for k in prepared}
    e2e = {k: [] for k in prepared}
    ips = {k: [] for k in prepared}
    for det, f1, fb, _ in prepared.values():  # warm-up
        for _ in range(10):
            det.run(f1)
        det.run(fb)
    for _ in range(rounds):
        for k, (det, f1, fb, img) in prepared.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                det.run(f1)
                lat[k].append((time.perf_counter() - t0) * 1000.0)
            for _ in range(max(1, per_round // 4)):
                t0 = time.perf_counter()
                det.detect(img)
                e2e[k].append((time.perf_counter() - t0) * 1000.0)
            reps = max(1, per_round // 8)
            t0 = time.perf_counter()
            for _ in range(reps):
                det.run(fb)
            ips[k].append(8 * reps / (time.perf_counter() - t0))
    return {
        k: {
            "latency_ms_p50": round(float(np.percentile(lat[k], 50)), 3),
            "latency_ms_p95": round(float(np.percentile(lat[k], 95)), 3),
            "e2e_ms_p50": round(float(np.percentile(e2e[k], 50)), 3),
            "e2e_ms_p95": round(float(np.percentile(e2e[k], 95)), 3),
            "images_per_s": round(float(np.median(ips[k])), 1),
            "runs": len(lat[k]),
        }
        for k in prepared
    }


def run(model: Path, work: Path, runs: int, threads: int, variants: list[str], cal_images: int) -> dict:
    cal = load_images(write_sample_zip(work / "calibration.zip", images=cal_images, seed=0))  # train scenes
    val = load_images(write_sample_zip(work / "validation.zip", images=100, seed=1000), need_annotations=True)
    backends = available_backends()
    rows, prepared = {}, {}
    for key in variants:
        target = TARGETS[key]
        ok, reason = backends[target.backend]
        if not ok:
            rows[key] = {"skipped": reason}
            log.info("%s skipped: %s", key, reason)
            continue
        out = work / "variants" / key
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        model_rel, _ = target.build(model, out, cal if target.needs_calibration else None, None)
        build_s = time.perf_counter() - t0
        config = {"threads": threads} if threads and target.backend != "tensorrt" else {}
        if target.backend == "onnxruntime":
            # the peer at its fastest: busy-spinning pool threads (off by default on devices) cut its latency
            config["spinning"] = True
        det = load(out / model_rel, backend=target.backend, device="cuda" if target.backend == "tensorrt" else "cpu",
                   **config)
        acc = evaluate(det, val)
        rows[key] = {"mAP50": acc["mAP50"], "mAP50_95": acc["mAP50_95"], "build_s": round(build_s, 1),
                     "precision": det.info["precision"], "backend": det.backend, "device": det.info["device"]}
        prepared[key] = _prepared(det, val)
        log.info("%s: %s", key, rows[key])
    rounds = 10
    load_before = os.getloadavg()[0]  # other processes on the machine skew every latency figure
    for key, figures in interleaved_timing(prepared, rounds, max(1, runs // rounds)).items():
        rows[key].update(figures)
        prepared[key][0].close()
    base = rows.get("onnx-fp32", {})
    for r in rows.values():
        if "latency_ms_p50" in r and "latency_ms_p50" in base:
            r["speedup_p50"] = round(base["latency_ms_p50"] / r["latency_ms_p50"], 2)
            r["speedup_e2e_p50"] = round(base["e2e_ms_p50"] / r["e2e_ms_p50"], 2)
            r["throughput_ratio"] = round(r["images_per_s"] / base["images_per_s"], 2)
            r["delta_mAP50"] = round(r["mAP50"] - base["mAP50"], 2)
    goal = goal_check(rows)
    return {"model": str(model), "cpu": cpu_name(), "cores": os.cpu_count(), "threads": threads, "runs": runs,
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "validation_images": len(val), "calibration_images": len(cal), "variants": rows, "goal": goal}


def goal_check(rows: dict) -> dict | None:
    """The fastest int8 variant against onnxruntime fp32, in session latency and end to end."""
    int8 = [(k, r) for k, r in rows.items() if TARGETS[k].precision == "int8" and "speedup_p50" in r]
    if not int8:
        return None
    goal: dict = {"target_speedup": GOAL_SPEEDUP, "max_drop": GOAL_MAX_DROP}
    for metric, suffix in (("speedup_p50", ""), ("speedup_e2e_p50", "_e2e")):
        k, r = max(int8, key=lambda kr, m=metric: kr[1][m])
        goal[f"fastest_int8{suffix}"] = k
        goal[metric] = r[metric]
        goal[f"delta_mAP50{suffix}"] = r["delta_mAP50"]
        goal[f"met{suffix}"] = r[metric] >= GOAL_SPEEDUP and r["delta_mAP50"] >= -GOAL_MAX_DROP
    return goal


def markdown(result: dict) -> str:
    lines = ["| variant | mAP@0.5 | Δ mAP@0.5 | mAP@.5:.95 | p50 ms | p95 ms | e2e p50 ms | e2e p95 ms | img/s (b8) "
             "| speed-up p50 | speed-up e2e p50 | img/s ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in result["variants"].items():
        if "skipped" in r:
            lines.append(f"| {key} | — | — | — | — | — | — | — | — | — | — | skipped: {r['skipped'][:60]} |")
            continue
        lines.append(f"| {key} | {r['mAP50']:.2f} | {r.get('delta_mAP50', 0):+.2f} | {r['mAP50_95']:.2f} | "
                     f"{r['latency_ms_p50']:.2f} | {r['latency_ms_p95']:.2f} | {r['e2e_ms_p50']:.2f} | "
                     f"{r['e2e_ms_p95']:.2f} | {r['images_per_s']:.0f} | {r.get('speedup_p50', 1):.2f}× | "
                     f"{r.get('speedup_e2e_p50', 1):.2f}× | {r.get('throughput_ratio', 1):.2f}× |")
    return "\n".join(lines)


def goal_lines(goal: dict | None) -> list[str]:
    """One line per metric: the fastest int8 variant's ratio against the goal."""
    if not goal:
        return ["goal: no int8 variant ran"]
    out = []
    for label, suffix, metric in (("session", "", "speedup_p50"), ("end-to-end", "_e2e", "speedup_e2e_p50")):
        out.append(f"goal ({label} batch-1 p50): {goal[f'fastest_int8{suffix}']} {goal[metric]:.2f}x onnxruntime fp32 "
                   f"(goal >= {goal['target_speedup']:.1f}x), {goal[f'delta_mAP50{suffix}']:+.2f} pt mAP@0.5 "
                   f"(goal >= -{goal['max_drop']:.1f}): {'met' if goal[f'met{suffix}'] else 'not met'}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="A contract ONNX detector (default: train the built-in one).")
    ap.add_argument("--work", type=Path, default=ROOT / "bench-out" / "runtimes")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per backend (0: each backend decides).")
    ap.add_argument("--calibration-images", type=int, default=100)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    args.work = args.work.resolve()  # the training task lists absolute paths: a relative --work broke it
    args.work.mkdir(parents=True, exist_ok=True)
    model = args.model or train_model(args.work, args.epochs)
    result = run(model, args.work, args.runs, args.threads, args.variants.split(","), args.calibration_images)
    (args.work / "result.json").write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print("\n".join(goal_lines(result["goal"])))
    print(json.dumps(result["goal"]))


if __name__ == "__main__":
    main()
