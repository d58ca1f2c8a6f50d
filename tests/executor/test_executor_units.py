"""Fast checks of the executor's building blocks: config rules, env remapping, targets, scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detkit.errors import BadInput
from executor.config import load_config, template, validate
from executor.contract import load_env
from executor.mine import uncertainty_scores
from executor.model import Arch, Detector, count_parameters
from executor.outputs import Monitor
from executor.sample_task import write_config, write_env
from executor.settings import load_settings
from executor.targets import focal_loss, giou_loss, make_targets


def test_templates_validate_and_carry_the_documented_keys():
    train = validate(template("training"), "training-template.yaml")
    for key in ("epochs", "batch_size", "learning_rate", "input_size", "augment_flip", "augment_scale_jitter",
                "augment_color_jitter", "seed", "num_threads", "conf_threshold", "export_format"):
        assert key in train, key
    assert validate(template("mining"), "m")["conf_threshold"] < validate(template("infer"), "i")["conf_threshold"]


@pytest.mark.parametrize(
    "key,value",
    [("epochs", 0), ("epochs", "many"), ("input_size", 250), ("learning_rate", 0), ("augment_flip", "maybe"),
     ("class_names", []), ("class_names", ["a", "a"]), ("export_format", "det-ark:raw"), ("device", "tpu")],
)
def test_bad_config_values_are_refused_by_name(key, value):
    with pytest.raises(BadInput, match=key):
        validate({key: value}, "config.yaml")


def test_settings_read_roots_from_the_environment(tmp_path):
    s = load_settings({"YMIR_IN_DIR": str(tmp_path / "i"), "YMIR_OUT_DIR": str(tmp_path / "o")})
    assert (s.in_dir, s.out_dir) == (tmp_path / "i", tmp_path / "o")
    assert load_settings({}).in_dir == Path("/in")


def test_container_paths_in_env_yaml_are_rerooted_under_the_local_backend(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "env.yaml").write_text(
        "task_id: t1\nrun_training: true\ninput:\n  root_dir: /in\n  training_index_file: /in/train-index.tsv\n"
        "  candidate_index_file: ''\noutput:\n  monitor_file: /out/monitor.txt\n"
    )
    env = load_env(load_settings({"YMIR_IN_DIR": str(tmp_path / "in"), "YMIR_OUT_DIR": str(tmp_path / "out")}))
    assert env.input["training_index_file"] == tmp_path / "in" / "train-index.tsv"
    assert env.input["candidate_index_file"] == tmp_path / "in" / "candidate-index.tsv"
    assert env.monitor_file == tmp_path / "out" / "monitor.txt"
    assert env.output["models_dir"] == tmp_path / "out" / "models"


def test_config_yaml_overrides_the_template(tmp_path):
    write_env(tmp_path, "t", training=True, mining=False, infer=False)
    write_config(tmp_path, epochs=3)
    env = load_env(load_settings({"YMIR_IN_DIR": str(tmp_path / "in"), "YMIR_OUT_DIR": str(tmp_path / "out")}))
    cfg = load_config(env, "training")
    assert cfg["epochs"] == 3 and cfg["batch_size"] == template("training")["batch_size"]


def test_monitor_line_format_and_throttling(tmp_path):
    m = Monitor(tmp_path / "monitor.txt", "t9", step=0.05)
    m.progress(0.01)
    first = (tmp_path / "monitor.txt").read_text()
    m.progress(0.02)  # under the step: not rewritten
    assert (tmp_path / "monitor.txt").read_text() == first
    task, ts, pct, state = first.strip().split("\t")
    assert task == "t9" and float(ts) > 0 and float(pct) == pytest.approx(0.01) and state == "2"
    m.error(2)
    assert (tmp_path / "monitor.txt").read_text().strip().split("\t")[3:] == ["4", "2"]


def test_targets_peak_at_the_centre_cell_and_regress_the_box():
    boxes = np.array([[40, 40, 104, 88], [8, 8, 24, 24]], np.float32)
    heatmap, box_t, weight = make_targets(boxes, np.array([1, 0]), 3, 128, 4)
    assert heatmap.shape == (3, 32, 32) and heatmap.max() == 1.0
    assert heatmap[1, 64 // 4, 72 // 4] == 1.0 and heatmap[0, 16 // 4, 16 // 4] == 1.0
    assert heatmap[2].max() == 0.0
    assert np.allclose(box_t[:, 64 // 4, 72 // 4], boxes[0]) and weight[16, 18] > 0
    assert (weight > 0).sum() > 2 and weight[0, 31] == 0


def test_losses_are_lowest_for_the_right_answer():
    boxes = np.array([[40, 40, 104, 88]], np.float32)
    hm, bt, w = (torch.from_numpy(a)[None] for a in make_targets(boxes, np.array([0]), 1, 128, 4))
    good = torch.logit(hm.clamp(1e-4, 1 - 1e-4))
    assert focal_loss(good, hm) < focal_loss(torch.zeros_like(hm), hm)
    ys, xs = torch.meshgrid((torch.arange(32) + 0.5) * 4, (torch.arange(32) + 0.5) * 4, indexing="ij")
    exact = torch.stack([xs - 40, ys - 40, 104 - xs, 88 - ys])[None]
    assert giou_loss(exact, bt, w, 4) < 1e-3 < giou_loss(exact * 0.5, bt, w, 4)


def test_uncertainty_scores_rank_uncertain_detections_first():
    scores = uncertainty_scores([np.array([0.5]), np.array([0.95, 0.9]), np.array([0.55, 0.97]), np.array([])])
    assert scores[0] == pytest.approx(1.0)
    assert scores[0] > scores[2] > scores[1] > scores[3] == 0.0
    lc = uncertainty_scores([np.array([0.3]), np.array([0.9])], "least_confidence")
    assert lc[0] > lc[1]


def test_detector_is_small_and_outputs_stride_4_maps():
    model = Detector(Arch(num_classes=3))
    assert 250_000 < count_parameters(model) < 1_000_000
    logits, dist = model(torch.zeros(2, 3, 128, 128))
    assert logits.shape == (2, 3, 32, 32) and dist.shape == (2, 4, 32, 32) and bool((dist > 0).all())


def test_every_template_setting_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "executor-contract.md").read_text()
    for kind in ("training", "mining", "infer"):
        for key in template(kind):
            assert f"`{key}`" in doc, f"{kind} setting {key} is not in docs/executor-contract.md"
