"""Quality bar of the built-in executor: val mAP@0.5 against wall-clock minutes on this machine.

Generates the sample set (400 train / 100 val seeded shape scenes, 3 classes), runs
``python -m executor`` with the default training template (what a user who changes nothing gets),
and reads the per-epoch ``history.json``. Goal: mAP@0.5 >= 0.90 within 5 minutes on 2 CPU cores.

    .venv/bin/python scripts/bench/train_shapes.py [--write-doc docs/bench/train_shapes.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from executor.sample_task import make_training_task  # noqa: E402

GOAL_MAP50, GOAL_MINUTES = 0.90, 5.0


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "n/a"


def run(train: int, val: int, seed: int, extra: dict) -> dict:
    """Run one training task; returns history, wall time and load figures."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = make_training_task(Path(tmp), train, val, seed, **extra)
        env = dict(os.environ, YMIR_IN_DIR=str(root / "in"), YMIR_OUT_DIR=str(root / "out"))
        env.pop("YMIR_NUM_THREADS", None)  # the template's default, as a user gets it
        load_before = _load()
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "executor"], cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.time() - t0
        if proc.returncode:
            sys.exit(f"executor failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        history = json.loads((root / "out" / "models" / "history.json").read_text())
        result = yaml.safe_load((root / "out" / "models" / "result.yaml").read_text())
    return {"history": history, "wall_s": wall, "load_before": load_before, "load_after": _load(),
            "best": result["model_stages"][result["best_stage_name"]]}


def summarize(res: dict) -> dict:
    """The figures the quality bar is judged on."""
    hist = res["history"]
    reached = next((h for h in hist if h["mAP50"] >= GOAL_MAP50), None)
    within = [h for h in hist if h["seconds"] <= GOAL_MINUTES * 60]
    at_goal = max((h["mAP50"] for h in within), default=0.0)
    return {
        "minutes_to_goal": round(reached["seconds"] / 60, 2) if reached else None,
        "epoch_at_goal": reached["epoch"] if reached else None,
        "best_map50_within_goal_minutes": round(at_goal, 4),
        "ratio_to_goal": round(at_goal / GOAL_MAP50, 3),
        "final_map50": hist[-1]["mAP50"],
        "final_map50_95": hist[-1]["mAP50_95"],
        "best_map50": res["best"]["mAP"],
        "wall_minutes": round(res["wall_s"] / 60, 2),
        "epochs": len(hist),
    }


def table(hist: list[dict]) -> str:
    rows = ["| epoch | minutes | loss | mAP@0.5 | mAP@[.5:.95] |", "|---:|---:|---:|---:|---:|"]
    rows += [f"| {h['epoch']} | {h['seconds'] / 60:.2f} | {h['loss']:.3f} | {h['mAP50']:.3f} | {h['mAP50_95']:.3f} |"
             for h in hist]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training setting (default: none, the template as shipped)")
    parser.add_argument("--write-doc", type=Path, help="write the figures to this markdown file")
    args = parser.parse_args()
    extra = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    res = run(args.train, args.val, args.seed, extra)
    fig = summarize(res)
    print(table(res["history"]))
    print(json.dumps(fig, indent=1))
    print(f"load average before {res['load_before']}, after {res['load_after']}; cpus {os.cpu_count()}")
    verdict = "MET" if fig["minutes_to_goal"] is not None and fig["minutes_to_goal"] <= GOAL_MINUTES else "NOT MET"
    print(f"goal mAP@0.5 >= {GOAL_MAP50} within {GOAL_MINUTES:g} min: {verdict}")
    if args.write_doc:
        cmd = "python scripts/bench/train_shapes.py" + "".join(f" --set {s}" for s in args.set)
        args.write_doc.parent.mkdir(parents=True, exist_ok=True)
        args.write_doc.write_text(
            f"# Built-in executor: training quality bar\n\n"
            f"Val mAP@0.5 of the built-in executor against wall-clock minutes, on the seeded sample set "
            f"({args.train} train / {args.val} val shape scenes, 3 classes, seed {args.seed}), "
            f"{'default settings' if not extra else 'settings ' + repr(extra)}.\n"
            f"Goal: mAP@0.5 >= {GOAL_MAP50} within {GOAL_MINUTES:g} minutes on 2 CPU cores: **{verdict}**.\n\n"
            f"Command: `{cmd}`\n\n"
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average before {res['load_before']}, after {res['load_after']} "
            f"(other jobs shared the cores, so times may be inflated). "
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
            f"```json\n{json.dumps(fig, indent=1)}\n```\n\n{table(res['history'])}\n"
        )


if __name__ == "__main__":
    main()
