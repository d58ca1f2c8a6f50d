"""Mining and inference runs with a trained model, through ``python -m executor``."""

from __future__ import annotations

import json

import numpy as np
from executor_helpers import make_candidate_task, run_executor

from detkit.synth import CLASSES, scenes


def test_mining_and_infer_in_one_task(trained, tmp_path):
    root = make_candidate_task(tmp_path, trained.out / "models" / "best.pt", mining=True, infer=True, count=12,
                               conf_threshold=0.1)
    run = run_executor(root)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.monitor[2:4] == ["1.0000", "3"]
    candidates = (root / "in" / "candidate-index.tsv").read_text().split()

    rows = [line.split("\t") for line in (run.out / "result.tsv").read_text().splitlines()]
    assert sorted(r[0] for r in rows) == sorted(candidates)
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert scores[0] > 0  # a trained model is unsure about something in 12 scenes

    detection = json.loads((run.out / "infer-result.json").read_text())["detection"]
    assert sorted(detection) == sorted(c.rsplit("/", 1)[-1] for c in candidates)
    truth = {f"candidate_{ann.filename}": ann for _, ann in scenes(12, seed=4242)}
    hits = total = 0
    for name, entry in detection.items():
        for b in entry["boxes"]:
            assert set(b) == {"box", "class_name", "score"} and b["class_name"] in CLASSES
            assert all(isinstance(b["box"][k], int) for k in "xywh") and b["score"] >= 0.1
        for gt in truth[name].boxes:  # recall at IoU 0.5, class-aware
            total += 1
            for b in entry["boxes"]:
                x, y, w, h = (b["box"][k] for k in "xywh")
                iw = max(0, min(x + w, gt.x2) - max(x, gt.x1))
                ih = max(0, min(y + h, gt.y2) - max(y, gt.y1))
                inter = iw * ih
                if b["class_name"] == gt.name and inter / (w * h + gt.area - inter) >= 0.5:
                    hits += 1
                    break
    assert total > 10 and hits / total > 0.3, (hits, total)


def test_mining_scores_more_uncertain_images_higher(trained, tmp_path):
    """Blank images score 0 under a box score; real scenes with shapes score above them."""
    from PIL import Image

    root = make_candidate_task(tmp_path, trained.out / "models" / "best.pt", mining=True, infer=False, count=6,
                               mining_algorithm="entropy")
    blank = root / "in" / "assets" / "blank.jpg"
    Image.fromarray(np.full((240, 320, 3), 114, np.uint8)).save(blank)
    index = root / "in" / "candidate-index.tsv"
    index.write_text(index.read_text() + f"{blank}\n")
    run = run_executor(root)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = dict(line.split("\t") for line in (run.out / "result.tsv").read_text().splitlines())
    assert float(rows[str(blank)]) == 0.0
    assert max(float(v) for k, v in rows.items() if k != str(blank)) > 0.0
