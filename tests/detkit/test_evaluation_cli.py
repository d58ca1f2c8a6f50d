"""``python -m detkit.evaluation``: numbers equal pycocotools; bad files exit 2 with a reason."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from detkit.evaluation.__main__ import main
from detkit.evaluation.reference import class_ap, run_reference
from detkit.evaluation.synthetic import synthetic_coco

pytest.importorskip("pycocotools")


@pytest.fixture
def files(tmp_path):
    gt, res = synthetic_coco(30, 5, 40, seed=31)
    g, d = tmp_path / "gt.json", tmp_path / "dt.json"
    g.write_text(json.dumps(gt))
    d.write_text(json.dumps(res))
    return gt, res, g, d


def test_json_output_matches_pycocotools(files, capsys):
    gt, res, g, d = files
    assert main([str(g), str(d), "--json", "--per-class", "--voc"]) == 0
    out = json.loads(capsys.readouterr().out)
    ev = run_reference(gt, res)
    np.testing.assert_allclose(out["stats"], ev.stats, rtol=0, atol=1e-9)
    ids = sorted(c["id"] for c in gt["categories"])
    np.testing.assert_allclose([out["per_class"][str(i)]["ap"] for i in ids], class_ap(ev), atol=1e-9)
    assert 0 <= out["voc"]["map"] <= 1 and out["voc"]["use_07_metric"] is False


def test_text_output_as_a_process(files):
    _, _, g, d = files
    p = subprocess.run([sys.executable, "-m", "detkit.evaluation", str(g), str(d), "--per-class"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("Average Precision") == 6 and p.stdout.count("Average Recall") == 6
    assert "class" in p.stdout


@pytest.mark.parametrize(
    "gt_text, dt_text, message",
    [
        ("{not json", "[]", "not valid JSON"),
        ('{"images": [], "categories": []}', '{"x": 1}', "must be a JSON list"),
        ('{"images": [{"id": 1}], "categories": [{"id": 1}]}', '[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}]',
         "result 0 has no 'score'"),
        ('{"images": [{"id": 1}], "categories": [{"id": 1}]}',
         '[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3], "score": 1}]', "4 numbers"),
        ('{"images": [{"id": 1}], "categories": [{"id": 1}]}',
         '[{"image_id": 9, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 1}]', "not in the ground truth"),
        ('{"categories": []}', "[]", "no 'images'"),
    ],
)
def test_bad_files_exit_2(tmp_path, capsys, gt_text, dt_text, message):
    g, d = tmp_path / "gt.json", tmp_path / "dt.json"
    g.write_text(gt_text)
    d.write_text(dt_text)
    assert main([str(g), str(d), "--json"]) == 2
    err = capsys.readouterr().err
    assert message in err


def test_missing_file_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "nope.json"), str(tmp_path / "nope2.json")]) == 2
    assert "not found" in capsys.readouterr().err
