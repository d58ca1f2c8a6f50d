"""Bad input ends as monitor state 4, a non-zero exit and a message saying what and where."""

from __future__ import annotations

import pytest
from executor_helpers import make_candidate_task, make_training_task, run_executor, write_split

from detkit.io.voc import parse_voc, to_voc


def _assert_failed(run, *needles: str) -> None:
    assert run.returncode == 2, run.stderr[-2000:]
    fields = run.monitor
    assert fields[3] == "4" and fields[4] == "2", fields
    for needle in needles:
        assert needle in run.stderr, run.stderr[-2000:]
        assert needle in run.log


def test_missing_env_yaml(tmp_path):
    (tmp_path / "in").mkdir()
    _assert_failed(run_executor(tmp_path), "env.yaml not found")


def test_malformed_env_yaml(tmp_path):
    make_training_task(tmp_path, 2, 2, epochs=1)
    (tmp_path / "in" / "env.yaml").write_text("task_id: [unclosed\n")
    _assert_failed(run_executor(tmp_path), "env.yaml", "not valid YAML")


def test_env_yaml_with_nothing_to_do(tmp_path):
    make_training_task(tmp_path, 2, 2, epochs=1)
    env = tmp_path / "in" / "env.yaml"
    env.write_text(env.read_text().replace("run_training: true", "run_training: false"))
    _assert_failed(run_executor(tmp_path), "nothing to do")


@pytest.mark.parametrize("line,needle", [("epochs: -3", "epochs"), ("input_size: 100", "input_size"),
                                         ("class_names: oops", "class_names"), (": [", "not valid YAML")])
def test_malformed_config(tmp_path, line, needle):
    make_training_task(tmp_path, 2, 2, epochs=1)
    cfg = tmp_path / "in" / "config.yaml"
    cfg.write_text(cfg.read_text() + line + "\n")
    _assert_failed(run_executor(tmp_path), needle)


def test_empty_training_index(tmp_path):
    make_training_task(tmp_path, 2, 2, epochs=1)
    (tmp_path / "in" / "train-index.tsv").write_text("")
    _assert_failed(run_executor(tmp_path), "training index is empty")


def test_unknown_class_in_annotations(tmp_path):
    make_training_task(tmp_path, 3, 2, epochs=1)
    ann_path = tmp_path / "in" / "annotations" / "train_scene_000001.xml"
    ann = parse_voc(ann_path.read_bytes())
    ann.boxes[0].name = "hexagon"
    ann_path.write_bytes(to_voc(ann))
    _assert_failed(run_executor(tmp_path), "unknown_classes", "hexagon")


def test_missing_asset(tmp_path):
    make_training_task(tmp_path, 3, 2, epochs=1)
    (tmp_path / "in" / "assets" / "train_scene_000002.jpg").unlink()
    _assert_failed(run_executor(tmp_path), "asset not found", "train_scene_000002.jpg")


def test_mining_without_a_model_of_this_executor(tmp_path):
    not_a_model = tmp_path / "x.pt"
    not_a_model.write_bytes(b"not a checkpoint")
    make_candidate_task(tmp_path, not_a_model, mining=True, infer=False, count=2)
    _assert_failed(run_executor(tmp_path), "bad_model")


def test_mining_with_empty_candidates(tmp_path):
    write_split(tmp_path / "in", "x", 1, 0)  # keeps assets dir populated
    not_a_model = tmp_path / "x.pt"
    not_a_model.write_bytes(b"")
    make_candidate_task(tmp_path, not_a_model, mining=True, infer=False, count=1)
    cfg = tmp_path / "in" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("best.pt", "missing.onnx"))
    _assert_failed(run_executor(tmp_path), "names no .pt model")
