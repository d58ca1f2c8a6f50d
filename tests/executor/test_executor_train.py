"""A real training run through ``python -m executor``: contract outputs and that the model learned."""

from __future__ import annotations

import json

import torch
import yaml
from executor_helpers import FAST_TRAIN, make_training_task, run_executor

from detkit.synth import CLASSES
from executor.contract import load_env, read_index
from executor.data import load_samples
from executor.model import Arch, Detector
from executor.predict import load_model, make_spec
from executor.settings import load_settings
from executor.train import validate


def test_training_succeeds_and_reports_done(trained):
    task, ts, pct, state = trained.monitor
    assert (task, float(pct), state) == ("t-train", 1.0, "3")
    assert "epoch 12/12" in trained.log and "training done" in trained.log


def test_result_yaml_follows_the_contract(trained, result_yaml):
    stages = result_yaml["model_stages"]
    assert set(stages) == {"epoch_6", "epoch_12", "best"}
    assert result_yaml["best_stage_name"] == "best"
    assert result_yaml["map"] == stages["best"]["mAP"]
    for name, stage in stages.items():
        assert stage["files"] == [f"{name}.pt", f"{name}.onnx"]
        for f in stage["files"]:
            assert (trained.out / "models" / f).is_file()
        assert set(stage["metrics"]) == {"mAP50", "mAP50_95"} and stage["mAP"] == stage["metrics"]["mAP50"]
        assert 0 <= stage["metrics"]["mAP50_95"] <= stage["metrics"]["mAP50"] <= 1
        assert stage["timestamp"] > 1_600_000_000
    assert stages["best"]["mAP"] == max(s["mAP"] for s in stages.values())


def test_history_has_one_row_per_epoch(trained):
    history = json.loads((trained.out / "models" / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 13))
    for h in history:
        assert {"epoch", "loss", "mAP50", "mAP50_95", "seconds"} <= set(h)
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(a["seconds"] < b["seconds"] for a, b in zip(history, history[1:], strict=False))


def test_the_model_learned(trained, result_yaml):
    """Val mAP50 of the trained model is far above an untrained one on the same images."""
    env = load_env(load_settings({"YMIR_IN_DIR": str(trained.root / "in"), "YMIR_OUT_DIR": str(trained.out)}))
    size = FAST_TRAIN["input_size"]
    val = load_samples(read_index(env, "val_index_file", True), list(CLASSES), size)
    torch.manual_seed(0)
    untrained = validate(Detector(Arch(len(CLASSES))), val, make_spec(list(CLASSES), size), torch.device("cpu"), 0.01)
    model, spec = load_model(trained.out / "models" / "best.pt", torch.device("cpu"))
    learned = validate(model, val, spec, torch.device("cpu"), 0.01)
    assert abs(learned["mAP50"] - result_yaml["model_stages"]["best"]["mAP"]) < 1e-5  # same decode, same number
    assert untrained["mAP50"] < 0.05
    assert learned["mAP50"] > 0.3, learned


def test_fine_tuning_starts_from_the_given_model(trained, result_yaml, tmp_path):
    """One epoch from the trained weights beats its own first from-scratch epoch by far."""
    root = make_training_task(tmp_path, 40, 40, **{**FAST_TRAIN, "epochs": 1, "pretrained_model_params": ["prev.pt"]})
    (root / "in" / "models").mkdir(exist_ok=True)
    (root / "in" / "models" / "prev.pt").write_bytes((trained.out / "models" / "best.pt").read_bytes())
    run = run_executor(root)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "fine-tuning from" in run.log
    first_scratch = json.loads((trained.out / "models" / "history.json").read_text())[0]["mAP50"]
    tuned = yaml.safe_load((run.out / "models" / "result.yaml").read_text())["map"]
    assert tuned > first_scratch + 0.2, (tuned, first_scratch)
