"""Every mining algorithm through the executor with a trained model; config keys and refusals."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from executor_helpers import make_candidate_task, run_executor

from detkit.errors import BadInput
from detkit.scoring import ALGORITHMS
from executor.config import load_config
from executor.contract import load_env
from executor.outputs import Monitor
from executor.settings import load_settings

COUNT = 6


def scores_of(root) -> dict[str, float]:
    lines = (root / "out" / "result.tsv").read_text().splitlines()
    values = [float(line.split("\t")[1]) for line in lines]
    assert values == sorted(values, reverse=True)  # YMIR's result.tsv: most worth labelling first
    return {line.split("\t")[0]: float(line.split("\t")[1]) for line in lines}


def env_of(root):
    return load_env(load_settings({"YMIR_IN_DIR": str(root / "in"), "YMIR_OUT_DIR": str(root / "out")}))


def add_blank(root) -> str:
    from PIL import Image

    blank = root / "in" / "assets" / "blank.jpg"
    Image.fromarray(np.full((240, 320, 3), 114, np.uint8)).save(blank)
    index = root / "in" / "candidate-index.tsv"
    index.write_text(index.read_text() + f"{blank}\n")
    return str(blank)


def test_default_aldd_through_the_executor_ranks_scenes_above_a_blank(trained, tmp_path):
    root = make_candidate_task(tmp_path, trained.out / "models" / "best.pt", mining=True, infer=False, count=COUNT)
    blank = add_blank(root)
    run = run_executor(root)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "mining: aldd (needs heatmap, 0 extra inferences per image)" in run.log
    scores = scores_of(root)
    assert len(scores) == COUNT + 1 and all(s >= 0 for s in scores.values())
    assert min(scores, key=scores.get) == blank  # nothing to disagree about on a grey frame
    assert min(v for k, v in scores.items() if k != blank) > 5 * scores[blank]


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_each_algorithm_writes_a_score_per_candidate(trained, tmp_path, name, caplog):
    """In-process through the executor's task runner (saves a torch start per algorithm)."""
    from executor.__main__ import run
    from executor.settings import Settings

    root = make_candidate_task(tmp_path, trained.out / "models" / "best.pt", mining=True, infer=False, count=COUNT,
                               mining_algorithm=name, conf_threshold=0.05)
    blank = add_blank(root)
    env = env_of(root)
    with caplog.at_level(logging.INFO, logger="executor.mine"):
        run(env, Settings(root / "in", root / "out", 1), Monitor(env.monitor_file, env.task_id))
    scores = scores_of(root)
    candidates = (root / "in" / "candidate-index.tsv").read_text().split()
    assert sorted(scores) == sorted(candidates)
    assert all(np.isfinite(v) and v >= 0 for v in scores.values())
    extra = ALGORITHMS[name].extra_inferences
    assert f"mining: {name} (needs {ALGORITHMS[name].needs}, {extra} extra inferences per image)" in caplog.text
    if name == "random":
        assert len(set(scores.values())) == len(scores) and all(v < 1 for v in scores.values())
    elif name in ("entropy", "least_confidence", "margin", "borderline", "cald"):
        assert scores[blank] <= min(scores.values()) + 1e-6 and max(scores.values()) > 0
    if name == "cald":
        assert all(v <= 1 for v in scores.values())


def test_random_is_reproducible_and_seeded(trained, tmp_path):
    from executor.__main__ import run
    from executor.settings import Settings

    got = []
    for i, seed in enumerate((3, 3, 4)):
        root = make_candidate_task(tmp_path / str(i), trained.out / "models" / "best.pt", mining=True, infer=False,
                                   count=4, mining_algorithm="random", seed=seed)
        env = env_of(root)
        run(env, Settings(root / "in", root / "out", 1), Monitor(env.monitor_file, env.task_id))
        got.append({k.rsplit("/", 1)[-1]: v for k, v in scores_of(root).items()})
    assert got[0] == got[1] and got[0] != got[2]


def test_unknown_algorithm_fails_with_a_clear_error(tmp_path):
    root = make_candidate_task(tmp_path, _dummy(tmp_path), mining=True,
                               infer=False, count=1, mining_algorithm="vibes")
    run = run_executor(root)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "mining_algorithm='vibes': unknown mining algorithm: choose from" in run.stderr
    assert "aldd" in run.log and run.monitor[3] == "4"


def _dummy(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("config,expected", [
    ({}, "aldd"),
    ({"uncertainty": "margin"}, "margin"),
    ({"mining_algorithm": "cald"}, "cald"),
    ({"mining_algorithm": "near_threshold"}, "borderline"),
    ({"mining_algorithm": "entropy", "uncertainty": "entropy"}, "entropy"),
])
def test_mining_algorithm_key_and_its_old_alias(tmp_path, config, expected):
    root = make_candidate_task(tmp_path, _dummy(tmp_path), mining=True, infer=False, count=1, **config)
    cfg = load_config(env_of(root), "mining")
    assert cfg["mining_algorithm"] == expected and "uncertainty" not in cfg


@pytest.mark.parametrize("config,needle", [
    ({"mining_algorithm": "aldd", "uncertainty": "margin"}, "contradicts mining_algorithm='aldd'"),
    ({"uncertainty": "vibes"}, "uncertainty='vibes': unknown mining algorithm"),
    ({"mining_algorithm": 3}, "mining_algorithm=3"),
    ({"borderline_band": 2}, "borderline_band=2"),
])
def test_bad_mining_config_is_refused(tmp_path, config, needle):
    root = make_candidate_task(tmp_path, _dummy(tmp_path), mining=True, infer=False, count=1, **config)
    with pytest.raises(BadInput, match=needle):
        load_config(env_of(root), "mining")
