"""Helpers for the executor tests: small real task folders and real ``python -m executor`` runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from executor.sample_task import make_training_task, write_config, write_env, write_split  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
# Small enough for ~1 minute of CPU, big enough that learning is unmistakable.
FAST_TRAIN = dict(epochs=12, input_size=192, save_period=6, seed=0)
TRAIN_IMAGES, VAL_IMAGES = 200, 40


@dataclass
class Run:
    root: Path
    returncode: int
    stderr: str

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def monitor(self) -> list[str]:
        return (self.out / "monitor.txt").read_text().strip().split("\t")

    @property
    def log(self) -> str:
        path = self.out / "ymir-executor-out.log"
        return path.read_text() if path.exists() else ""


def run_executor(root: Path, timeout: float = 300) -> Run:
    """Run the executor as the local backend does: a child process told its roots by env vars."""
    env = dict(os.environ, YMIR_IN_DIR=str(root / "in"), YMIR_OUT_DIR=str(root / "out"), YMIR_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "executor"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return Run(root, proc.returncode, proc.stderr)


def make_candidate_task(root: Path, model_pt: Path, mining: bool, infer: bool, count: int = 12, **config) -> Path:
    """A mining/infer task over fresh scenes, with ``model_pt`` under ``in/models``."""
    write_split(root / "in", "candidate", count, seed=4242, annotated=False)
    (root / "in" / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy(model_pt, root / "in" / "models" / "best.pt")
    write_env(root, "t-cand", training=False, mining=mining, infer=infer)
    write_config(root, model_params_path=["best.pt"], **config)
    return root


