"""Fixtures for job tests: a workspace database, toy executor kinds, and (when an engine is up) docker."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from detkit.annotations import Box, ImageAnnotation
from hub.db import Database
from hub.jobs import contract
from hub.jobs.base import ExecutorImage
from hub.jobs.contract import InputSet, Item
from hub.jobs.kinds import ExecutorKind, JobContext, PreparedRun, register

HERE = Path(__file__).parent
TOY_SH = HERE / "toy_executor.sh"
TOY_SDK = HERE / "toy_ymir_exc.py"
TOY_DOCKER_REF = "ymir-test/toy-executor:1"
APPLETS = ["sh", "grep", "sed", "head", "tail", "wc", "date", "sleep", "cat", "echo", "printf", "mkdir",
           "basename", "dirname", "ls", "true", "env"]


@pytest.fixture
def ctx(tmp_path) -> JobContext:
    database = Database(tmp_path / "hub.db")
    database.migrate()
    yield JobContext(database=database, workspace=tmp_path)
    database.close()


def _items(tmp_path: Path, n: int) -> list[Item]:
    items = []
    src_dir = tmp_path / "src"
    src_dir.mkdir(exist_ok=True)
    for i in range(n):
        sha = f"{i:040x}"
        src = src_dir / sha
        src.write_bytes(b"\xff\xd8\xff fake jpeg %d" % i)
        ann = ImageAnnotation(filename=f"{i}.jpg", width=64, height=48, boxes=[Box(1, 2, 30, 40, "circle")])
        items.append(Item(sha1=sha, src=src, ext="jpg", annotation=ann))
    return items


def toy_image(sdk: bool = False) -> ExecutorImage:
    if sdk:
        return ExecutorImage("toy-sdk", local_command=[str(Path(os.sys.executable)), str(TOY_SDK)])
    return ExecutorImage("toy", docker_ref=TOY_DOCKER_REF, local_command=["/bin/sh", str(TOY_SH)])


def _prepare(ctx: JobContext, job: dict) -> PreparedRun:
    p = job["params"]
    items = _items(ctx.workspace, 4)
    mode = p.get("mode", "train")
    inputs = InputSet(training=items[:3], validation=items[3:]) if mode == "train" else InputSet(candidates=items)
    return PreparedRun(
        image=toy_image(p.get("sdk", False)),
        config={"behavior": p.get("behavior", "ok"), "class_names": ["circle"]},
        inputs=inputs, training=mode == "train", mining=mode == "mine", infer=mode == "infer",
    )


def _finish(ctx: JobContext, job: dict, out_dir: Path) -> dict:
    mode = job["params"].get("mode", "train")
    if mode == "train":
        res = contract.read_training_result(out_dir)
        return {"best_stage": res.best_stage, "stages": {s.name: s.metrics for s in res.stages}}
    if mode == "mine":
        return {"scores": contract.read_mining_result(out_dir)}
    preds = contract.read_infer_result(out_dir)
    return {"predictions": {k: len(v.boxes) for k, v in preds.items()}}


register("toy", ExecutorKind(prepare=_prepare, finish=_finish))


def _busybox_rootfs(script: Path) -> bytes:
    busybox = shutil.which("busybox") or "/bin/busybox"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "in", "out"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        tar.add(str(script), arcname="toy.sh")
    return buf.getvalue()


@pytest.fixture(scope="session")
def docker_host() -> str:
    host = os.environ.get("YMIR_TEST_DOCKER_HOST")
    if not host:
        pytest.skip("no docker engine: scripts/test.sh starts one when dockerd is installed and we are root")
    if not (shutil.which("busybox") or Path("/bin/busybox").exists()):
        pytest.skip("busybox-static is not installed: cannot build the toy executor image")
    import docker

    client = docker.DockerClient(base_url=host)
    try:
        client.images.get(TOY_DOCKER_REF)
    except docker.errors.ImageNotFound:
        repo, tag = TOY_DOCKER_REF.split(":")
        client.api.import_image_from_data(_busybox_rootfs(TOY_SH), repository=repo, tag=tag,
                                          changes=['CMD ["/bin/sh", "/toy.sh"]'])
    yield host
    client.close()
