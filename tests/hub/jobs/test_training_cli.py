"""Training, inference, mining and models through the hub CLI, with the built-in executor as a job."""

from __future__ import annotations

import json
import tarfile

import pytest
from hub_helpers import shapes_hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    run = shapes_hub(tmp_path_factory.mktemp("ws"), sets=(("train", 24, 1), ("val", 8, 2)))
    run("class", "add", "hexagon")
    return run


@pytest.fixture(scope="module")
def trained(hub):
    out = hub("train", "--project", "shapes", "--train", "1", "--val", "2", "--set", "epochs=2",
              "--set", "input_size=128", "--wait", "--json")
    return json.loads(out.stdout)


def test_train_wait_json_gives_the_model_and_its_best_stage(trained, hub):
    assert trained["model_id"] >= 1 and trained["best_stage"] in trained["stages"]
    assert set(trained["metrics"]) >= {"mAP50", "mAP50_95"}
    assert sorted(trained["class_names"]) == ["circle", "square", "triangle"]
    shown = json.loads(hub("model", "show", str(trained["model_id"]), "--json").stdout)
    assert shown["train_version_id"] == 1 and shown["val_version_id"] == 2
    assert any(f.endswith(".onnx") for s in shown["stages"] for f in s["files"])
    assert shown["history"], "per-epoch history kept for the chart"
    jobs = json.loads(hub("job", "list", "--json").stdout)
    assert jobs[0]["kind"] == "train" and jobs[0]["state"] == "done"
    logs = json.loads(hub("job", "logs", trained["job_id"], "--json").stdout)["log"]
    assert logs.strip(), "the executor's output is kept"


def test_infer_makes_a_prediction_version(trained, hub):
    out = json.loads(hub("infer", "--model", str(trained["model_id"]), "--dataset", "2", "--wait",
                         "--json").stdout)
    (row,) = out
    version = json.loads(hub("dataset", "show", str(row["version_id"]), "--json").stdout)
    assert version["images"] == 8 and version["gt_boxes"] > 0
    assert version["pred_boxes"] == row["pred_boxes"]


def test_mine_scores_every_candidate(trained, hub):
    out = json.loads(hub("mine", "--model", str(trained["model_id"]), "--dataset", "2", "--wait",
                         "--json").stdout)
    scores = out[0]["scores"]
    assert len(scores) == 8 and [s for _, s in scores] == sorted((s for _, s in scores), reverse=True)


def test_model_export_import_round_trip(trained, hub):
    path = hub.home / "m.tar.gz"
    hub("model", "export", str(trained["model_id"]), "--out", str(path))
    with tarfile.open(path) as tar:
        assert "ymir-info.yaml" in tar.getnames()
    imported = json.loads(hub("model", "import", str(path), "--project", "shapes", "--json").stdout)
    assert imported["best_stage"] == trained["best_stage"]
    assert imported["class_names"] == trained["class_names"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--image", "nope"], "executor image 'nope' is not registered"),
        (["--gpus", "1"], "cannot assign GPUs"),
        (["--targets", "hexagon"], "targets not in the training set: hexagon"),
        (["--pretrained", "999"], "model 999 not found"),
    ],
)
def test_train_refuses_bad_requests_at_submit(hub, args, message):
    result = hub("train", "--project", "shapes", "--train", "1", "--val", "2", *args, ok=False)
    assert result.exit_code == 2 and message in result.stderr


def test_failed_training_reports_why(hub):
    result = hub("train", "--project", "shapes", "--train", "1", "--val", "2", "--set", "epochs=-3", "--wait",
                 ok=False)
    assert result.exit_code == 2 and "failed" in result.stderr
    failed = json.loads(hub("job", "list", "--state", "failed", "--json").stdout)[0]
    assert failed["error_code"] == "executor_failed" and failed["log_tail"]


def test_cancel_a_queued_job(hub):
    queued = json.loads(hub("train", "--project", "shapes", "--train", "1", "--val", "2", "--json").stdout)
    out = json.loads(hub("job", "cancel", queued["job_id"], "--json").stdout)
    assert out["state"] == "cancelled"
    again = hub("job", "cancel", queued["job_id"], ok=False)
    assert again.exit_code == 2 and "already cancelled" in again.stderr


def test_images_copy_public_and_link(hub):
    images = json.loads(hub("image", "list", "--json").stdout)
    builtin = next(i for i in images if i["builtin"])
    assert builtin["templates"]["training"]["epochs"] > 0 and builtin["manifest"]["object_type"] == 2
    copy = json.loads(hub("image", "copy", builtin["name"], "my-detector", "--json").stdout)
    assert copy["templates"] == builtin["templates"] and not copy["builtin"] and not copy["is_public"]
    refused = hub("image", "copy", "my-detector", "another", ok=False)
    assert refused.exit_code == 2 and "not public" in refused.stderr
    hub("image", "public", "my-detector")
    hub("image", "copy", "my-detector", "another")
    linked = json.loads(hub("image", "link", builtin["name"], "my-detector", "--json").stdout)
    assert linked["mining_image_id"] == copy["id"]
