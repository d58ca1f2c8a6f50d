"""Diagnosis pages and CLI: side-by-side tables, models on test sets, `ymir-hub evaluate --json`, exit 2."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_diagnosis_helpers import pred_zip, scenes, setup_project, upload

from hub.cli import main
from hub.store import datasets as ds_store
from hub.store import models as models_store
from hub.store import predictions as predictions_store


@pytest.fixture
def two_preds(api, tmp_path):
    """Two prediction versions of the same eight images (different predictions)."""
    setup_project(api)
    gt, pred = scenes(8, seed=3)
    _, other = scenes(8, seed=4)
    a = upload(api, pred_zip(tmp_path / "a.zip", gt, pred, model="alpha"), name="a")
    b = upload(api, pred_zip(tmp_path / "b.zip", gt, {k: other.get(k, []) for k in gt}, model="beta"), name="b")
    return a, b


def _infer_version(database, src: dict, model_id: int, shift: float) -> int:
    """What an inference job leaves behind: a copy of ``src`` with the model's predictions."""
    rows = []
    for r in database.db.execute(
        "SELECT asset_sha1, class_id, x1, y1, x2, y2 FROM annotations WHERE version_id = ? AND kind = 'gt'",
        [src["id"]],
    ).fetchall():
        rows.append((r[0], r[1], r[2] + shift, r[3], r[4] + shift, r[5], 0.9))
    v = ds_store.create_version(database, src["group_id"], operation="infer", parent_ids=[src["id"]],
                                source={"kind": "infer", "model_id": model_id, "model": f"m{model_id}"})
    with database.write() as db:
        predictions_store.fill_prediction_version(db, src_version_id=src["id"], dst_version_id=v["id"], rows=rows,
                                                  report={"pred_boxes": len(rows)})
    return v["id"]


def test_diagnosis_page_shows_two_versions_side_by_side(client, api, two_preds):
    a, b = two_preds
    ra = api.get(f"/api/v1/versions/{a['id']}/evaluation").get_json()
    rb = api.get(f"/api/v1/versions/{b['id']}/evaluation").get_json()
    html = client.get(f"/projects/1/diagnosis?pred={a['id']}&pred={b['id']}").get_data(as_text=True)
    assert 'id="map-table"' in html and 'id="sweep-chart"' in html and 'class="pr-chart"' in html
    assert "a v1 · alpha" in html and "b v1 · beta" in html
    assert f'<td class="map50">{ra["mAP50"]:.3f}</td>' in html and f'<td class="map50">{rb["mAP50"]:.3f}</td>' in html
    assert "vendor/chart-4.6.1.umd.min.js" in html and 'id="diagnosis-data"' in html
    # the empty form lists the prediction versions; a bad IoU is shown on the page
    form = client.get("/projects/1/diagnosis").get_data(as_text=True)
    assert 'name="pred"' in form and 'id="map-table"' not in form and "Diagnosis" in form
    bad = client.get(f"/projects/1/diagnosis?pred={a['id']}&iou=2")
    assert bad.status_code == 400 and "iou" in bad.get_data(as_text=True)


def test_models_on_test_sets(api, two_preds, workspace, client):
    a, _ = two_preds
    db = workspace.database
    src = ds_store.get_version(db, a["id"])
    models = [
        models_store.create_model(db, project_id=1, name=f"det{i}", image="builtin", source="trained",
                                  class_names=["cat", "dog"], stages=[], best_stage="", folder="")
        for i in range(2)
    ]
    v0 = _infer_version(db, src, models[0]["id"], 0.0)
    v1 = _infer_version(db, src, models[1]["id"], 6.0)
    r = api.get(f"/api/v1/diagnosis?models={models[0]['id']},{models[1]['id']}&test={a['id']}")
    assert r.status_code == 200, r.get_json()
    evs = r.get_json()["evaluations"]
    assert [e["pred_version"]["id"] for e in evs] == [v0, v1]
    assert evs[0]["mAP50"] == pytest.approx(1.0) and evs[1]["mAP50"] < evs[0]["mAP50"]
    assert evs[0]["pred_version"]["model_id"] == models[0]["id"]
    html = client.get(f"/projects/1/diagnosis?models={models[0]['id']}&test={a['id']}").get_data(as_text=True)
    assert 'id="map-table"' in html and "1.000" in html
    none = api.get(f"/api/v1/diagnosis?models={models[0]['id']}&test={v1}").get_json()
    assert none["code"] == "not_found" and "run inference" in none["error"]


def _cli(home, *args):
    return CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)


def test_cli_evaluate_and_analyze_json(api, two_preds, workspace):
    a, _ = two_preds
    home = workspace.settings.home
    res = _cli(home, "evaluate", "--gt", str(a["id"]), "--pred", str(a["id"]), "--iou", "0.5", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {"mAP50", "mAP50_95", "coco_stats", "voc_mAP", "per_class"} <= set(out)
    assert len(out["coco_stats"]) == 12 and set(out["per_class"]) <= {"cat", "dog"}
    assert "pr_curves" not in out
    api_res = api.get(f"/api/v1/versions/{a['id']}/evaluation").get_json()
    assert out["mAP50"] == api_res["mAP50"] and out["cached"] is False and api_res["cached"] is True
    full = json.loads(_cli(home, "evaluate", "--pred", str(a["id"]), "--full", "--json").stdout)
    assert "pr_curves" in full and "confusion" in full
    text = _cli(home, "evaluate", "--pred", str(a["id"])).stdout
    assert "mAP50" in text and "cat" in text
    an = _cli(home, "dataset", "analyze", str(a["id"]), "--json")
    assert an.exit_code == 0, an.output
    doc = json.loads(an.stdout)
    assert doc["images"] == 8 and {"gt", "pred", "image_histograms", "warnings"} <= set(doc)
    assert "warning:" in _cli(home, "dataset", "analyze", str(a["id"])).stdout


@pytest.mark.parametrize(
    "args",
    [
        ("evaluate", "--pred", "999", "--json"),
        ("evaluate", "--pred", "{a}", "--gt", "999"),
        ("evaluate", "--pred", "{a}", "--iou", "1.5"),
        ("evaluate", "--pred", "{a}", "--conf", "-1"),
        ("dataset", "analyze", "999", "--json"),
    ],
)
def test_cli_bad_input_exits_2(two_preds, workspace, args):
    a, _ = two_preds
    res = _cli(workspace.settings.home, *[x.format(a=a["id"]) for x in args])
    assert res.exit_code == 2 and "error:" in res.stderr


def test_cli_pred_version_without_predictions_exits_2(api, workspace, tmp_path):
    setup_project(api)
    gt, _ = scenes(3, seed=6)
    g = upload(api, pred_zip(tmp_path / "g.zip", gt, None), name="plain")
    res = _cli(workspace.settings.home, "evaluate", "--pred", str(g["id"]), "--json")
    assert res.exit_code == 2 and "no predictions" in res.stderr


def test_inference_version_with_no_prediction_at_all(api, two_preds, workspace):
    """A model that found nothing: every GT box is a miss, no error."""
    a, _ = two_preds
    db = workspace.database
    m = models_store.create_model(db, project_id=1, name="blind", image="builtin", source="trained",
                                  class_names=["cat", "dog"], stages=[], best_stage="", folder="")
    src = ds_store.get_version(db, a["id"])
    v = ds_store.create_version(db, src["group_id"], operation="infer", parent_ids=[src["id"]],
                                source={"kind": "infer", "model_id": m["id"], "model": "blind"})
    with db.write() as d:
        predictions_store.fill_prediction_version(d, src_version_id=src["id"], dst_version_id=v["id"], rows=[],
                                                  report={})
    res = api.get(f"/api/v1/versions/{v['id']}/evaluation").get_json()
    assert res["pred_boxes"] == 0 and res["mAP50"] == 0 and res["tp"] == 0 and res["fp"] == 0
    assert res["fn"] == src["gt_boxes"] and res["recall"] == 0
    fn = api.get(f"/api/v1/versions/{v['id']}/labels?label=FN&limit=100").get_json()
    assert fn["counts"]["FN"] == src["gt_boxes"]
