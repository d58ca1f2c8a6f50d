"""Model import and export: YMIR model packages (tar.gz with ``ymir-info.yaml``) and bare ONNX files.

A YMIR package holds ``ymir-info.yaml`` (``executor_config`` with ``class_names``, ``task_context``
with the image, ``stages`` with files and mAP, ``best_stage_name``) next to the stage files. An
ONNX file imports as a one-stage model; its class names come from its ``ymir.spec`` metadata or
from the caller.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import time
import uuid
from pathlib import Path

import yaml

from detkit.errors import BadInput, BadModel
from detkit.manifest import METADATA_KEY, ModelSpec
from hub.store import models as models_store

MAX_MEMBER_BYTES = 4 << 30


def _safe_members(tar: tarfile.TarFile, where: str) -> list[tarfile.TarInfo]:
    members = []
    for m in tar.getmembers():
        name = m.name
        if name.startswith("/") or ".." in Path(name).parts:
            raise BadInput(f"{where}: entry {name!r} escapes the package")
        if m.issym() or m.islnk() or m.isdev():
            raise BadInput(f"{where}: entry {name!r} is a link or device; refused")
        if m.isfile():
            if m.size > MAX_MEMBER_BYTES:
                raise BadInput(f"{where}: entry {name!r} is too large")
            members.append(m)
    return members


def _onnx_class_names(path: Path) -> list[str] | None:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise BadModel(f"{path.name}: not an ONNX model ({exc})") from None
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return ModelSpec.from_json(prop.value, where=f"{path.name} metadata").class_names
    return None


def import_model(database, workspace: Path, path: Path, *, project_id: int | None, name: str | None = None,
                 class_names: list[str] | None = None, image: str = "") -> dict:
    """Import ``path`` (a YMIR .tar.gz or an .onnx) as a new model of ``project_id``."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such file")
    folder = f"import-{uuid.uuid4().hex[:12]}"
    dst = workspace / "models" / folder
    dst.mkdir(parents=True)
    try:
        if path.suffix == ".onnx":
            names = _onnx_class_names(path) or class_names
            if not names:
                raise BadInput(f"{path.name}: no class names in its metadata; give them (--classes a,b)")
            shutil.copyfile(path, dst / path.name)
            stages = [{"name": "imported", "files": [path.name], "metrics": {}, "timestamp": time.time()}]
            best = "imported"
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as tar:
                members = _safe_members(tar, path.name)
                info_member = next((m for m in members if Path(m.name).name == "ymir-info.yaml"), None)
                if info_member is None:
                    raise BadInput(f"{path.name}: no ymir-info.yaml in the package")
                try:
                    info = yaml.safe_load(tar.extractfile(info_member).read()) or {}
                except yaml.YAMLError as exc:
                    raise BadInput(f"{path.name}: ymir-info.yaml is malformed ({exc})") from None
                for m in members:
                    if m is not info_member:
                        with tar.extractfile(m) as src, open(dst / Path(m.name).name, "wb") as out:
                            shutil.copyfileobj(src, out)
            names = (info.get("executor_config") or {}).get("class_names") or class_names
            if not names:
                raise BadInput(f"{path.name}: ymir-info.yaml names no class_names")
            image = image or (info.get("task_context") or {}).get("executor", "") or info.get("image", "")
            raw_stages = info.get("stages") or {}
            if not raw_stages and info.get("models"):
                raw_stages = {"default": {"files": info["models"], "mAP": (info.get("task_context") or {}).get("mAP", 0)}}
            stages = []
            for sname, st in raw_stages.items():
                files = [Path(f).name for f in st.get("files", [])]
                for f in files:
                    if not (dst / f).exists():
                        raise BadInput(f"{path.name}: stage {sname!r} names missing file {f!r}")
                metrics = dict(st.get("metrics") or {})
                if "mAP" in st:
                    metrics.setdefault("mAP", float(st["mAP"]))
                stages.append({"name": str(sname), "files": files, "metrics": metrics,
                               "timestamp": float(st.get("timestamp") or 0)})
            if not stages:
                raise BadInput(f"{path.name}: ymir-info.yaml lists no stages")
            best = str(info.get("best_stage_name") or stages[-1]["name"])
        else:
            raise BadInput(f"{path.name}: neither an .onnx file nor a tar.gz model package")
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise
    return models_store.create_model(
        database, project_id=project_id, name=name or path.name.split(".")[0], image=image, source="imported",
        class_names=[str(n) for n in names], stages=stages, best_stage=best, folder=folder,
    )


def export_model(workspace: Path, model: dict, out: Path) -> Path:
    """Write ``model`` as a YMIR-style tar.gz (ymir-info.yaml + every stage file)."""
    folder = workspace / "models" / model["folder"]
    info = {
        "package_version": 1,
        "executor_config": {"class_names": model["class_names"], **model["config"]},
        "task_context": {"executor": model["image"], "model_id": model["id"]},
        "stages": {s["name"]: {"files": s["files"], "metrics": s["metrics"], "mAP": s["metrics"].get("mAP50",
                   s["metrics"].get("mAP", 0.0)), "timestamp": s["timestamp"]} for s in model["stages"]},
        "best_stage_name": model["best_stage"],
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = sorted({f for s in model["stages"] for f in s["files"]})
    with tarfile.open(out, "w:gz") as tar:
        data = yaml.safe_dump(info, sort_keys=False).encode()
        ti = tarfile.TarInfo("ymir-info.yaml")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
        for f in files:
            tar.add(folder / f, arcname=f)
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_summary(model: dict) -> dict:
    best = next((s for s in model["stages"] if s["name"] == model["best_stage"]), None)
    return {"model_id": model["id"], "name": model["name"], "version": model["version"],
            "best_stage": model["best_stage"], "metrics": best["metrics"] if best else {},
            "stages": [s["name"] for s in model["stages"]], "class_names": model["class_names"],
            "image": model["image"], "source": model["source"], "job_id": model["job_id"]}



