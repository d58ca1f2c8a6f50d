"""Benchmark: detkit's COCO evaluator vs pycocotools vs faster-coco-eval on one synthetic set.

    .venv/bin/python scripts/bench/eval_coco.py [--images 5000] [--classes 80] [--max-dets 100]
        [--max-gt 12] [--seed 0] [--repeat 3] [--no-pycocotools] [--files]

Builds a seeded synthetic COCO set (detkit.evaluation.synthetic), evaluates it with each
implementation from the same in-memory dicts (each gets its own deep copy, made before the clock
starts; ours includes turning the dicts into arrays), and prints times, speed ratios and the
largest difference of the 12 summary numbers and of per-class AP against pycocotools.
``--files`` also times the whole path from JSON files (parse included) for every tool.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from detkit.evaluation import evaluate_flat, flat_from_coco, load_coco_files  # noqa: E402
from detkit.evaluation.reference import class_ap, run_reference  # noqa: E402
from detkit.evaluation.synthetic import synthetic_coco  # noqa: E402


def ours(gt, res):
    r = evaluate_flat(flat_from_coco(gt, res))
    return np.asarray(r.stats), np.array(list(r.per_class_ap.values()))


def reference(impl):
    def run(gt, res):
        ev = run_reference(gt, res, impl, copy_inputs=False)
        return np.asarray(ev.stats[:12]), class_ap(ev)

    return run


def timed(fn, gt, res, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        g, r = copy.deepcopy(gt), copy.deepcopy(res)
        t = time.perf_counter()
        out = fn(g, r)
        best = min(best, time.perf_counter() - t)
    return best, out


def timed_files(impl, gt_path, dt_path, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        if impl == "detkit":
            evaluate_flat(load_coco_files(gt_path, dt_path))
        else:
            with open(gt_path) as f:
                gt = json.load(f)
            with open(dt_path) as f:
                res = json.load(f)
            run_reference(gt, res, impl, copy_inputs=False)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--max-dets", type=int, default=100)
    ap.add_argument("--max-gt", type=int, default=12, help="most ground-truth boxes per image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="best of N (pycocotools always runs once)")
    ap.add_argument("--no-pycocotools", action="store_true", help="skip the slow reference")
    ap.add_argument("--files", action="store_true", help="also time from JSON files")
    args = ap.parse_args()

    t = time.perf_counter()
    gt, res = synthetic_coco(args.images, args.classes, args.max_dets, args.seed, max_gt=args.max_gt)
    print(f"set: {len(gt['images'])} images, {len(gt['categories'])} classes, "
          f"{len(gt['annotations'])} ground-truth boxes, {len(res)} detections "
          f"(built in {time.perf_counter() - t:.1f} s)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs")

    impls = {"detkit": (ours, args.repeat), "faster-coco-eval": (reference("faster-coco-eval"), args.repeat)}
    if not args.no_pycocotools:
        impls["pycocotools"] = (reference("pycocotools"), 1)
    times, outs = {}, {}
    for name, (fn, rep) in impls.items():
        times[name], outs[name] = timed(fn, gt, res, rep)
        print(f"  {name:<17} {times[name]:8.3f} s")
    base = "pycocotools" if "pycocotools" in outs else "faster-coco-eval"
    for name in impls:
        ds = np.abs(outs[name][0] - outs[base][0]).max()
        dc = np.abs(outs[name][1] - outs[base][1]).max()
        print(f"  {name:<17} max |stats - {base}| = {ds:.3g}, max |per-class AP - {base}| = {dc:.3g}")
    for name in impls:
        if name != "detkit":
            print(f"  detkit is {times[name] / times['detkit']:.1f}x faster than {name}")
    print("  stats (detkit):", " ".join(f"{v:.4f}" for v in outs["detkit"][0]))

    if args.files:
        with tempfile.TemporaryDirectory() as tmp:
            g, d = os.path.join(tmp, "gt.json"), os.path.join(tmp, "dt.json")
            with open(g, "w") as f:
                json.dump(gt, f)
            with open(d, "w") as f:
                json.dump(res, f)
            print("from JSON files (parse included):")
            ft = {}
            for name, (_, rep) in impls.items():
                ft[name] = timed_files(name, g, d, rep)
                print(f"  {name:<17} {ft[name]:8.3f} s")
            for name in impls:
                if name != "detkit":
                    print(f"  detkit is {ft[name] / ft['detkit']:.1f}x faster than {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
