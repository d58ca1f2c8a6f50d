"""Lay out a runnable task folder (``in/`` + ``out/``) from seeded synthetic scenes.

For tests, the benchmark and trying the executor by hand::

    python -m executor.sample_task /tmp/task --train 400 --val 100
    YMIR_IN_DIR=/tmp/task/in YMIR_OUT_DIR=/tmp/task/out python -m executor
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from detkit.io.voc import to_voc
from detkit.synth import CLASSES, scenes


def write_split(in_dir: Path, name: str, count: int, seed: int, annotated: bool = True) -> Path:
    """Write ``count`` scenes as assets (+ VOC annotations) and an index file ``<name>-index.tsv``."""
    assets, anns = in_dir / "assets", in_dir / "annotations"
    assets.mkdir(parents=True, exist_ok=True)
    anns.mkdir(parents=True, exist_ok=True)
    lines = []
    for img, ann in scenes(count, seed):
        stem = f"{name}_{Path(ann.filename).stem}"
        img_path, ann_path = assets / f"{stem}.jpg", anns / f"{stem}.xml"
        img.save(img_path, "JPEG", quality=90)
        ann.filename = img_path.name
        ann_path.write_bytes(to_voc(ann))
        lines.append(f"{img_path}\t{ann_path}" if annotated else str(img_path))
    index = in_dir / f"{name}-index.tsv"
    index.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return index


def write_env(root: Path, task_id: str, training: bool, mining: bool, infer: bool) -> Path:
    """``in/env.yaml`` for a task rooted at ``root`` (paths under ``root/in`` and ``root/out``)."""
    i, o = root / "in", root / "out"
    env = {
        "task_id": task_id,
        "protocol_version": "1.1.0",
        "run_training": training,
        "run_mining": mining,
        "run_infer": infer,
        "input": {"root_dir": str(i), "assets_dir": str(i / "assets"), "annotations_dir": str(i / "annotations"),
                  "models_dir": str(i / "models"), "training_index_file": str(i / "train-index.tsv"),
                  "val_index_file": str(i / "val-index.tsv"), "candidate_index_file": str(i / "candidate-index.tsv"),
                  "config_file": str(i / "config.yaml")},
        "output": {"root_dir": str(o), "models_dir": str(o / "models"), "tensorboard_dir": str(o / "tensorboard"),
                   "training_result_file": str(o / "models" / "result.yaml"),
                   "mining_result_file": str(o / "result.tsv"), "infer_result_file": str(o / "infer-result.json"),
                   "monitor_file": str(o / "monitor.txt"), "executor_log_file": str(o / "ymir-executor-out.log")},
    }
    i.mkdir(parents=True, exist_ok=True)
    o.mkdir(parents=True, exist_ok=True)
    path = i / "env.yaml"
    path.write_text(yaml.safe_dump(env, sort_keys=False), encoding="utf-8")
    return path


def write_config(root: Path, **values: Any) -> Path:
    """``in/config.yaml`` with ``class_names`` of the synthetic scenes plus ``values``."""
    cfg = {"class_names": list(CLASSES), "gpu_id": "", "gpu_count": 0, "task_id": "t0", **values}
    path = root / "in" / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def make_training_task(root: Path, train: int, val: int, seed: int = 0, **config: Any) -> Path:
    """A complete training task: train/val splits from different seeds, env.yaml, config.yaml."""
    write_split(root / "in", "train", train, seed)
    write_split(root / "in", "val", val, seed + 1000)
    write_env(root, "t-train", training=True, mining=False, infer=False)
    write_config(root, **config)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make_training_task(args.root, args.train, args.val, args.seed)
    print(f"YMIR_IN_DIR={args.root / 'in'} YMIR_OUT_DIR={args.root / 'out'} python -m executor")


if __name__ == "__main__":
    main()
