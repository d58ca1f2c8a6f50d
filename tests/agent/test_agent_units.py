"""Settings, protocol payloads, uncertainty scores, the outbox, mining policy and capture uploads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from agent_helpers import sample_jpeg

from agent import protocol
from agent.config import load_settings
from agent.mining import Miner, TokenBucket
from agent.models import ServedModel
from agent.uplink import Outbox, Uplink
from detkit import scoring
from detkit.errors import BadInput

# ---- settings ---------------------------------------------------------------------------------


def test_settings_merge_file_env_and_validate(tmp_path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text('device_id = "cam-1"\nallowed_backends = ["onnxruntime", "openvino"]\n'
                   '[mqtt]\nurl = "mqtt://broker:1884"\nkeepalive = 10\n[uplink]\nbatch_size = 5\n')
    s = load_settings(cfg, env={"YMIR_AGENT_MQTT_KEEPALIVE": "20", "YMIR_AGENT_UPLINK_PREDICTIONS": "false",
                                "OTHER": "x"})
    assert (s.device_id, s.mqtt_keepalive, s.uplink_batch_size, s.uplink_predictions) == ("cam-1", 20, 5, False)
    assert s.mqtt_host_port_tls == ("broker", 1884, False)
    assert s.allowed_backends == ("onnxruntime", "openvino")


@pytest.mark.parametrize("env, words", [
    ({"YMIR_AGENT_MQTT_KEEPALIV": "3"}, "unknown setting YMIR_AGENT_MQTT_KEEPALIV"),
    ({"YMIR_AGENT_KEEP_SLOTS": "two"}, "YMIR_AGENT_KEEP_SLOTS"),
    ({"YMIR_AGENT_HUB_URL": "ftp://x"}, "hub_url"),
    ({"YMIR_AGENT_ALLOWED_BACKENDS": "onnxruntime,cuda"}, "allowed_backends"),
    ({"YMIR_AGENT_DEVICE_ID": "bad id/"}, "device_id"),
    ({"YMIR_AGENT_MINING_SCORE": "vibes"}, "mining_score"),
    ({"YMIR_AGENT_TOPIC_PREFIX": "a/#"}, "topic_prefix"),
])
def test_settings_reject_with_what_and_where(env, words):
    env = {"YMIR_AGENT_DEVICE_ID": "d1", **env}
    with pytest.raises(BadInput) as err:
        load_settings(env=env)
    assert words in err.value.message


def test_settings_require_device_and_readable_file(tmp_path):
    with pytest.raises(BadInput, match="device_id is required"):
        load_settings(env={})
    bad = tmp_path / "a.toml"
    bad.write_text("device_id = ")
    with pytest.raises(BadInput, match="not valid TOML"):
        load_settings(bad, env={})


# ---- protocol ---------------------------------------------------------------------------------

SHA = "a" * 64


def test_protocol_topics_and_round_trip():
    t = protocol.Topics("ymir/v1", "dev1")
    assert t.status == "ymir/v1/devices/dev1/status" and t.cmd_result == "ymir/v1/devices/dev1/cmd/result"
    assert protocol.parse_topic("ymir/v1", t.cmd_result) == ("dev1", "cmd/result")
    assert protocol.parse_topic("ymir/v1", "ymir/v1/devices/dev1/evil") is None
    assert protocol.subscription("ymir/v1", "reported") == "ymir/v1/devices/+/reported"
    doc = protocol.desired(3, [{"name": "det", "revision": 2, "sha256": SHA, "url": "/api/v1/artifacts/" + SHA,
                                "size": 10, "settings": {"conf": 0.4}}])
    d = protocol.Desired.parse(protocol.encode(doc))
    assert d.revision == 3 and d.deployments[0].settings == {"conf": 0.4} and d.deployments[0].backend == "onnxruntime"
    cmd = protocol.Command.parse(protocol.encode(protocol.command("c1", "rollback", "det")))
    assert (cmd.id, cmd.action, cmd.deployment) == ("c1", "rollback", "det")
    rep = protocol.reported(5, "det", 2, "failed", "bad model")
    assert rep["schema"] == protocol.SCHEMA and rep["seq"] == 5


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.update(schema=2), "schema"),
    (lambda d: d["deployments"][0].update(sha256="xyz"), "sha256"),
    (lambda d: d["deployments"][0].update(settings={"conf": 3}), "conf"),
    (lambda d: d["deployments"][0].update(backend="tflite"), "backend"),
    (lambda d: d["deployments"][0].update(revision=True), "revision"),
    (lambda d: d["deployments"].append(dict(d["deployments"][0])), "unique"),
    (lambda d: d["deployments"][0].update(url="file:///etc/passwd"), "url"),
])
def test_protocol_rejects_bad_desired(mutate, words):
    doc = {"schema": 1, "revision": 1, "deployments": [{"name": "det", "revision": 1, "sha256": SHA,
                                                         "url": "http://h/a", "size": 1}]}
    mutate(doc)
    with pytest.raises(protocol.ProtocolError, match=words):
        protocol.Desired.parse(json.dumps(doc))


# ---- scoring ----------------------------------------------------------------------------------


def test_scores_single_probabilities():
    p = np.array([0.5, 0.9, 0.1])
    np.testing.assert_allclose(scoring.least_confidence(p), [0.5, 0.1, 0.9])
    np.testing.assert_allclose(scoring.margin(p), [1.0, 0.2, 0.2])
    ent = scoring.entropy(p)
    assert ent[0] == pytest.approx(1.0) and ent[1] == pytest.approx(ent[2]) and ent[1] < 0.5
    assert scoring.near_threshold(p, 0.5, 0.1) == 1


def test_scores_distributions_and_batches():
    p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(scoring.margin(p), [1.0, 0.0])
    np.testing.assert_allclose(scoring.entropy(p), [np.log(2) / np.log(3), 0.0], atol=1e-9)
    per = scoring.batch_image_scores([np.array([0.9, 0.55]), np.array([]), np.array([0.99])], threshold=0.5)
    assert per[1] == {"least_confidence": 0.0, "margin": 0.0, "entropy": 0.0, "near_threshold": 0.0, "boxes": 0}
    assert per[0]["boxes"] == 2 and per[0]["near_threshold"] == 1.0
    assert per[0]["entropy"] > per[2]["entropy"]  # a box at 0.55 is more uncertain than one at 0.99
    one = scoring.image_scores(np.array([0.9, 0.55]), threshold=0.5)
    assert one == per[0]
    with pytest.raises(ValueError):
        scoring.entropy(np.zeros((2, 2, 2)))


# ---- outbox -----------------------------------------------------------------------------------


def test_outbox_bounded_fifo_survives_reopen(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", max_rows=5)
    for i in range(8):
        box.put("prediction", {"i": i})
    assert [p["i"] for _, p, _ in box.peek("prediction", 10)] == [3, 4, 5, 6, 7]
    assert box.stats()["dropped"]["prediction"] == 3 and box.stats()["depth"] == 5
    box.ack([i for i, _, _ in box.peek("prediction", 2)], "sent_prediction")
    box.close()
    box = Outbox(tmp_path / "o.sqlite3", max_rows=5)
    assert [p["i"] for _, p, _ in box.peek("prediction", 10)] == [5, 6, 7]
    st = box.stats()
    assert st["depth"] == 3 and st["sent"]["prediction"] == 2 and st["dropped"]["prediction"] == 3


def test_outbox_byte_bound_drops_oldest_frames(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", max_rows=100, max_bytes=3000)
    for i in range(5):
        box.put("capture", {"i": i}, b"x" * 1000)
    assert [p["i"] for _, p, _ in box.peek("capture", 10)] == [3, 4]
    assert box.stats()["dropped"]["capture"] == 3


def test_uplink_batches_in_order_and_keeps_items_when_unacked(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    for i in range(12):
        box.put("prediction", {"i": i})
    sent, up = [], [False]
    uplink = Uplink(box, "dev1", lambda kind, payload: up[0] and not sent.append(payload), batch_size=5)
    assert uplink.drain()["predictions"] == 0 and box.stats()["depth"] == 12  # broker down: nothing lost
    up[0] = True
    assert uplink.drain()["predictions"] == 12
    assert [len(b["records"]) for b in sent] == [5, 5, 2]
    assert [r["i"] for b in sent for r in b["records"]] == list(range(12))
    assert [b["batch"] for b in sent] == sorted(b["batch"] for b in sent)


# ---- mining + captures ------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _settings(tmp_path, **over):
    return load_settings(env={}, overrides={"device_id": "dev1", "store_dir": str(tmp_path), "mining_top_k": 2,
                                            "mining_window": 10.0, "mining_control_share": 0.0,
                                            "mining_rate_per_min": 60.0, **over})


def test_miner_top_k_per_window_and_rate_limit(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    clock = Clock()
    miner = Miner(_settings(tmp_path), box, seed=0, clock=clock)
    model = ServedModel("det", detector=None, revision=3, sha256=SHA)
    for i, e in enumerate([0.2, 0.9, 0.5, 0.7, 0.1]):
        miner.observe(model, sample_jpeg(i), {"scores": {"entropy": e}, "detections": [], "width": 64})
    assert box.stats()["by_kind"] == {"prediction": 5, "capture": 0}  # window still open
    clock.t = 10.5
    assert miner.tick() == 2
    caps = box.peek("capture", 10)
    assert [c[1]["score"] for c in caps] == [0.9, 0.7] and caps[0][1]["reason"] == "top_k"
    assert caps[0][1]["record"]["deployment"] == "det" and caps[0][2][:3] == b"\xff\xd8\xff"
    bucket = TokenBucket(2.0, clock)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.t += 30.0
    assert bucket.take()


def test_miner_control_share_is_random_sample(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    miner = Miner(_settings(tmp_path, mining_control_share=0.25, mining_top_k=0, mining_rate_per_min=1e6,
                            uplink_predictions=False), box, seed=1, clock=Clock())
    model = ServedModel("det", detector=None)
    for i in range(400):
        miner.observe(model, b"\x89PNG\r\n\x1a\n" + bytes([i % 256]), {"scores": {"entropy": 0.0}})
    n = box.stats()["by_kind"]["capture"]
    assert 60 <= n <= 140 and box.stats()["by_kind"]["prediction"] == 0
    assert box.peek("capture", 1)[0][1]["reason"] == "control" and box.peek("capture", 1)[0][1]["mime"] == "image/png"


def test_captures_upload_to_hub_with_token_and_retry(tmp_path, hub):
    box = Outbox(tmp_path / "o.sqlite3")
    box.put("capture", {"record": {"id": "r1"}, "reason": "top_k", "format": "jpg", "mime": "image/jpeg"}, sample_jpeg())
    uplink = Uplink(box, "dev1", None, hub.url, hub.token)
    hub.fail_captures = True
    assert uplink.drain()["captures"] == 0 and box.stats()["depth"] == 1  # hub down: kept
    hub.fail_captures = False
    assert uplink.drain()["captures"] == 1 and box.stats()["depth"] == 0
    cap = hub.captures[0]
    assert cap["path"] == "/api/v1/devices/dev1/captures" and cap["type"].startswith("multipart/form-data")
    assert b'name="frame"; filename="r1.jpg"' in cap["body"] and b'"reason": "top_k"' in cap["body"]
    box.put("capture", {"record": {"id": "r2"}}, b"x")
    bad = Uplink(box, "dev1", None, hub.url, "wrong-token")
    assert bad.drain()["captures"] == 0 and box.stats()["refused"] == 1  # 401: refused for good, counted


# ---- CLI ----------------------------------------------------------------------------------------


def test_cli_config_masks_secrets_and_exits_2_on_bad_settings(tmp_path):
    import logging

    from click.testing import CliRunner

    from agent.cli import main

    saved = list(logging.getLogger().handlers)
    runner = CliRunner()
    env = {"YMIR_AGENT_DEVICE_ID": "cam-1", "YMIR_AGENT_DEVICE_TOKEN": "tok-123", "YMIR_AGENT_KEEP_SLOTS": "4"}
    res = runner.invoke(main, ["config"], env=env)
    assert res.exit_code == 0, res.output
    assert "device_id = 'cam-1'" in res.output and "keep_slots = 4" in res.output
    assert "tok-123" not in res.output and "device_token = '***'" in res.output
    res = runner.invoke(main, ["config"], env={"YMIR_AGENT_KEEP_SLOTS": "-1"})
    assert res.exit_code == 2 and "keep_slots must be >= 0" in res.output
    res = runner.invoke(main, ["run", "--config", str(tmp_path / "missing.toml")], env={})
    assert res.exit_code == 2 and "file not found" in res.output
    bad_model = tmp_path / "x.onnx"
    bad_model.write_bytes(b"not onnx")
    res = runner.invoke(main, ["serve", str(bad_model), "--port", "0"])
    assert res.exit_code == 2 and "x.onnx" in res.output
    for h in logging.getLogger().handlers:  # serve set up logging on the runner's stream
        if h not in saved:
            logging.getLogger().removeHandler(h)
