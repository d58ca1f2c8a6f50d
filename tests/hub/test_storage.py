"""Assets on S3-compatible storage, against a real S3 server (moto in server mode) on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import zipfile

import pytest

from detkit.errors import BadInput, Unavailable
from hub.config import load_settings

boto3 = pytest.importorskip("boto3", reason="pip install 'ymir-edge[s3]'")
moto_server = pytest.importorskip("moto.server", reason="pip install 'moto[server]'")

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_url():
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_url, monkeypatch):
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    name = f"assets-{_free_port()}"
    client.create_bucket(Bucket=name)
    return client, name


def _env(url, bucket_name, **more):
    return {**CREDS, "YMIR_STORAGE": "s3", "YMIR_S3_ENDPOINT_URL": url, "YMIR_S3_BUCKET": bucket_name,
            "YMIR_S3_PREFIX": "ws1", **more}


def _keys(client, name) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", [])]


def test_import_stores_in_bucket_and_cache_refills(tmp_path, s3_url, bucket):
    from tests.hub.hub_helpers import shapes_hub

    client, name = bucket
    env = _env(s3_url, name)
    run = shapes_hub(tmp_path / "ws", sets=(("train", 6, 3),), env=env)
    keys = _keys(client, name)
    assert len(keys) == 6 and all(k.startswith("ws1/assets/") for k in keys)

    settings = load_settings(run.home, env=env)
    sha1s = sorted(k.rsplit("/", 1)[1] for k in keys)
    # the local folder is only a cache: wipe it, every reader fetches the bytes back
    shutil.rmtree(settings.assets_dir)
    from hub.web.thumbs import thumbnail_path

    assert thumbnail_path(settings, sha1s[0]).stat().st_size > 0
    out = tmp_path / "export.zip"
    run("dataset", "export", "1", "--format", "voc", "--out", str(out))
    with zipfile.ZipFile(out) as zf:
        assert sum(n.endswith(".jpg") for n in zf.namelist()) == 6

    shutil.rmtree(settings.assets_dir)
    from hub.jobs.kinds import JobContext
    from hub.store.workspace import Workspace
    from hub.training import version_items

    ws = Workspace.open(settings)
    items = version_items(JobContext(ws.database, run.home, settings), 1, None, with_gt=True)
    assert len(items) == 6
    for sha1 in sha1s:
        assert settings.asset_store.local_path(sha1).is_file()


def test_missing_bucket_fails_import_and_stores_nothing(tmp_path, s3_url, bucket):
    from tests.hub.hub_helpers import shapes_hub

    client, name = bucket
    env = _env(s3_url, name + "-missing")
    run = shapes_hub(tmp_path / "ws", sets=(), env=env)
    from detkit.synth import write_sample_zip

    result = run("dataset", "import", "--project", "shapes", "--zip",
                 str(write_sample_zip(tmp_path / "a.zip", 4, 1)), ok=False)
    assert result.exit_code != 0
    assert "asset storage s3://" in result.output and "failed" in result.output
    assert _keys(client, name) == []
    settings = load_settings(run.home, env=env)
    assert not any(p.is_file() for p in settings.assets_dir.rglob("*"))


def test_unreachable_endpoint_fails_import(tmp_path, bucket):
    from tests.hub.hub_helpers import shapes_hub

    _, name = bucket
    env = _env(f"http://127.0.0.1:{_free_port()}", name)
    run = shapes_hub(tmp_path / "ws", sets=(), env=env)
    from detkit.synth import write_sample_zip

    result = run("dataset", "import", "--project", "shapes", "--zip",
                 str(write_sample_zip(tmp_path / "a.zip", 3, 1)), ok=False)
    assert result.exit_code != 0 and "asset storage" in result.output


def test_failed_publish_leaves_no_orphan_objects(tmp_path, s3_url, bucket):
    client, name = bucket
    settings = load_settings(tmp_path / "ws", env=_env(s3_url, name))
    store = settings.asset_store
    good = "a" * 40
    path = store._cached(good)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"bytes")
    with pytest.raises(Unavailable, match="storing"):
        store.publish([good, "b" * 40])  # the second has no local file: the whole publish is undone
    assert _keys(client, name) == []


@pytest.mark.parametrize("env, needle", [
    ({"YMIR_STORAGE": "gcs"}, "unknown asset storage"),
    ({"YMIR_STORAGE": "s3"}, "YMIR_S3_BUCKET"),
    ({"YMIR_STORAGE": "s3", "YMIR_S3_BUCKET": "b", "YMIR_S3_ENDPOINT_URL": "minio:9000"}, "http(s) URL"),
    ({"YMIR_STORAGE": "s3", "YMIR_S3_BUCKET": "b", "YMIR_S3_PREFIX": "/x/"}, "YMIR_S3_PREFIX"),
])
def test_bad_storage_settings_rejected(tmp_path, env, needle):
    with pytest.raises(BadInput, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_settings(tmp_path / "ws", env=env)


def test_local_is_default(tmp_path):
    settings = load_settings(tmp_path / "ws", env={})
    assert settings.storage == "local" and settings.asset_store.key == "local"


def test_import_failing_after_upload_removes_its_objects(tmp_path, s3_url, bucket):
    from detkit.synth import write_sample_zip
    from tests.hub.hub_helpers import shapes_hub

    client, name = bucket
    env = _env(s3_url, name, YMIR_MAX_IMAGES="3")  # checked after the upload: the import fails late
    run = shapes_hub(tmp_path / "ws", sets=(), env=env)
    result = run("dataset", "import", "--project", "shapes", "--zip",
                 str(write_sample_zip(tmp_path / "a.zip", 5, 1)), ok=False)
    assert result.exit_code != 0
    assert _keys(client, name) == []
