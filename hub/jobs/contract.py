"""The executor contract (YMIR's, protocol 1): what the hub writes to ``/in`` and reads from ``/out``.

Writing ``/in``: ``env.yaml`` (task id, which of training/mining/infer to run, every input and
output path), ``config.yaml`` (template values + user edits + reserved keys), the index files
(``<asset path>\\t<annotation path>``; candidates: asset path only), the assets under
``assets/<sha1[-2:]>/<sha1>.<ext>``, VOC XML annotations under ``annotations/`` and models under
``models/``. Inside a container the roots are ``/in`` and ``/out``; under the local backend they are
the job's own folders, and every written path follows them (:class:`Roots`).

Reading ``/out``: ``monitor.txt`` (``task_id\\ttimestamp\\tpercent\\tstate[\\treturn_code]``, state
1 pending, 2 running, 4 error), ``models/result.yaml`` (``model_stages`` + ``best_stage_name``, or
the legacy ``{model: [...], map: x}``), ``result.tsv`` (mining: path, score) and
``infer-result.json`` (``{"detection": {asset: {"boxes" | "annotations": [...]}}}``).
Everything read is validated; a malformed file raises :class:`ContractError` saying which and why.

Documented for image authors in ``docs/executor-contract.md``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from detkit.annotations import Box, ImageAnnotation
from detkit.errors import YmirError
from detkit.io.voc import to_voc

PROTOCOL_VERSION = "1.1.0"
RESERVED_KEYS = ("class_names", "gpu_id", "gpu_count", "task_id", "pretrained_model_params",
                 "model_params_path", "export_format")
STATE_PENDING, STATE_RUNNING, STATE_DONE, STATE_ERROR = 1, 2, 3, 4


class ContractError(YmirError):
    """An executor broke the contract (bad monitor line, missing or malformed result)."""

    code = "executor_contract"
    status = 500


@dataclass(frozen=True)
class Roots:
    """Where ``/in`` and ``/out`` are as the executor sees them (container or local folders)."""

    in_dir: str = "/in"
    out_dir: str = "/out"


@dataclass
class Item:
    """One asset handed to an executor: its stored file, its extension and (optional) annotation."""

    sha1: str
    src: Path
    ext: str
    annotation: ImageAnnotation | None = None


@dataclass
class InputSet:
    training: list[Item] = field(default_factory=list)
    validation: list[Item] = field(default_factory=list)
    candidates: list[Item] = field(default_factory=list)
    models: list[Path] = field(default_factory=list)


def env_document(task_id: str, roots: Roots, *, training: bool, mining: bool, infer: bool) -> dict:
    i, o = roots.in_dir.rstrip("/"), roots.out_dir.rstrip("/")
    return {
        "task_id": task_id,
        "protocol_version": PROTOCOL_VERSION,
        "run_training": training,
        "run_mining": mining,
        "run_infer": infer,
        "input": {
            "root_dir": i,
            "assets_dir": f"{i}/assets",
            "annotations_dir": f"{i}/annotations",
            "models_dir": f"{i}/models",
            "training_index_file": f"{i}/train-index.tsv" if training else "",
            "val_index_file": f"{i}/val-index.tsv" if training else "",
            "candidate_index_file": f"{i}/candidate-index.tsv" if (mining or infer) else "",
            "config_file": f"{i}/config.yaml",
        },
        "output": {
            "root_dir": o,
            "models_dir": f"{o}/models",
            "tensorboard_dir": f"{o}/tensorboard",
            "training_result_file": f"{o}/models/result.yaml",
            "mining_result_file": f"{o}/result.tsv",
            "infer_result_file": f"{o}/infer-result.json",
            "monitor_file": f"{o}/monitor.txt",
            "executor_log_file": f"{o}/ymir-executor-out.log",
        },
    }


def _place_asset(item: Item, in_dir: Path) -> str:
    rel = f"assets/{item.sha1[-2:]}/{item.sha1}.{item.ext}"
    dst = in_dir / rel
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:  # hard links cost nothing; fall back to a copy across filesystems
            os.link(item.src, dst)
        except OSError:
            shutil.copyfile(item.src, dst)
    return rel


def _write_index(name: str, items: Iterable[Item], in_dir: Path, roots: Roots, with_annotations: bool) -> None:
    lines = []
    for item in items:
        rel = _place_asset(item, in_dir)
        asset_path = f"{roots.in_dir.rstrip('/')}/{rel}"
        if with_annotations:
            ann = item.annotation or ImageAnnotation()
            ann_rel = f"annotations/{item.sha1}.xml"
            (in_dir / ann_rel).parent.mkdir(parents=True, exist_ok=True)
            (in_dir / ann_rel).write_bytes(to_voc(ann))
            lines.append(f"{asset_path}\t{roots.in_dir.rstrip('/')}/{ann_rel}")
        else:
            lines.append(asset_path)
    (in_dir / name).write_text("".join(line + "\n" for line in lines))


def prepare_inputs(
    in_dir: Path,
    out_dir: Path,
    *,
    task_id: str,
    roots: Roots,
    config: dict,
    inputs: InputSet,
    training: bool = False,
    mining: bool = False,
    infer: bool = False,
) -> None:
    """Lay out ``in_dir`` (and an empty ``out_dir``) for one executor run."""
    in_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("models", "tensorboard"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    (in_dir / "assets").mkdir(exist_ok=True)
    (in_dir / "annotations").mkdir(exist_ok=True)
    models_dir = in_dir / "models"
    models_dir.mkdir(exist_ok=True)
    model_paths = []
    for model in inputs.models:
        dst = models_dir / model.name
        if not dst.exists():
            shutil.copyfile(model, dst)
        model_paths.append(f"{roots.in_dir.rstrip('/')}/models/{model.name}")
    if training:
        _write_index("train-index.tsv", inputs.training, in_dir, roots, True)
        _write_index("val-index.tsv", inputs.validation, in_dir, roots, True)
    if mining or infer:
        _write_index("candidate-index.tsv", inputs.candidates, in_dir, roots, False)
    cfg = dict(config)
    cfg["task_id"] = task_id
    if model_paths:
        cfg["pretrained_model_params"] = model_paths
        cfg["model_params_path"] = model_paths
    env = env_document(task_id, roots, training=training, mining=mining, infer=infer)
    (in_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=True))
    (in_dir / "env.yaml").write_text(yaml.safe_dump(env, sort_keys=False))
    (out_dir / "monitor.txt").write_text(f"{task_id}\t0\t0.00\t{STATE_PENDING}\n")


@dataclass
class Monitor:
    task_id: str
    timestamp: float
    percent: float  # 0..1
    state: int
    return_code: int | None = None


def read_monitor(out_dir: Path) -> Monitor | None:
    """The last line of ``monitor.txt``; None if absent or empty. Malformed → ContractError."""
    path = out_dir / "monitor.txt"
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    line = text.splitlines()[-1]
    parts = line.split("\t")
    if len(parts) < 4:
        raise ContractError(f"monitor.txt: malformed line {line[:120]!r} (want task_id, timestamp, percent, state)")
    try:
        percent = float(parts[2])
        state = int(parts[3])
        ts = float(parts[1])
        rc = int(parts[4]) if len(parts) > 4 and parts[4].strip() else None
    except ValueError:
        raise ContractError(f"monitor.txt: malformed line {line[:120]!r}") from None
    if state not in (STATE_PENDING, STATE_RUNNING, STATE_DONE, STATE_ERROR):
        raise ContractError(f"monitor.txt: unknown state {state} in {line[:120]!r}")
    if percent > 1.0 + 1e-9:  # some images write 0..100
        percent /= 100.0
    return Monitor(parts[0], ts, max(0.0, min(1.0, percent)), state, rc)


@dataclass
class Stage:
    name: str
    files: list[str]
    metrics: dict[str, float]
    timestamp: float = 0.0


@dataclass
class TrainingResult:
    stages: list[Stage]
    best_stage: str


def _metric(value, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ContractError(f"{where}: metric {value!r} is not a number") from None


def read_training_result(out_dir: Path) -> TrainingResult:
    """Parse ``models/result.yaml`` (stages or legacy); every named file must exist."""
    path = out_dir / "models" / "result.yaml"
    if not path.exists():
        raise ContractError("executor wrote no models/result.yaml")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ContractError(f"models/result.yaml: malformed YAML ({exc})") from None
    if not isinstance(doc, dict):
        raise ContractError("models/result.yaml: expected a mapping")
    stages: list[Stage] = []
    if isinstance(doc.get("model_stages"), dict):
        for name, st in doc["model_stages"].items():
            if not isinstance(st, dict) or not isinstance(st.get("files"), list):
                raise ContractError(f"models/result.yaml: stage {name!r} has no file list")
            metrics = {k: _metric(v, f"stage {name}") for k, v in (st.get("metrics") or {}).items()}
            if "mAP" in st:
                metrics.setdefault("mAP", _metric(st["mAP"], f"stage {name}"))
            stages.append(Stage(str(name), [str(f) for f in st["files"]], metrics, float(st.get("timestamp") or 0)))
        best = str(doc.get("best_stage_name") or "")
        if not best and stages:
            best = max(stages, key=lambda s: s.metrics.get("mAP", 0.0)).name
    elif isinstance(doc.get("model"), list):
        metrics = {"mAP": _metric(doc.get("map", 0.0), "legacy result")}
        stages.append(Stage("default", [str(f) for f in doc["model"]], metrics))
        best = "default"
    else:
        raise ContractError("models/result.yaml: neither model_stages nor legacy model list")
    if not stages:
        raise ContractError("models/result.yaml: no stages")
    if best not in {s.name for s in stages}:
        raise ContractError(f"models/result.yaml: best_stage_name {best!r} is not a stage")
    for stage in stages:
        for f in stage.files:
            if not (out_dir / "models" / Path(f).name).exists():
                raise ContractError(f"models/result.yaml: stage {stage.name!r} names missing file {f!r}")
    return TrainingResult(stages, best)


def read_mining_result(out_dir: Path) -> list[tuple[str, float]]:
    """``result.tsv`` lines (asset path or name, score), highest score first."""
    path = out_dir / "result.tsv"
    if not path.exists():
        raise ContractError("executor wrote no result.tsv")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ContractError(f"result.tsv line {n}: want 'asset<TAB>score', got {line[:120]!r}")
        rows.append((parts[0].strip(), _metric(parts[1], f"result.tsv line {n}")))
    rows.sort(key=lambda r: -r[1])
    return rows


def asset_key(path_or_name: str) -> str:
    """The sha1 an executor's asset path or basename refers to (``.../ab/<sha1>.jpg`` → ``<sha1>``)."""
    return Path(path_or_name).name.split(".")[0]


def read_infer_result(out_dir: Path) -> dict[str, ImageAnnotation]:
    """``infer-result.json`` → asset sha1 → predicted boxes (``boxes`` or older ``annotations`` key)."""
    path = out_dir / "infer-result.json"
    if not path.exists():
        raise ContractError("executor wrote no infer-result.json")
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise ContractError(f"infer-result.json: malformed JSON ({exc})") from None
    det = doc.get("detection") if isinstance(doc, dict) else None
    if not isinstance(det, dict):
        raise ContractError("infer-result.json: no 'detection' mapping")
    out: dict[str, ImageAnnotation] = {}
    for asset, entry in det.items():
        boxes = (entry or {}).get("boxes", (entry or {}).get("annotations", []))
        ann = ImageAnnotation()
        for i, b in enumerate(boxes or []):
            try:
                box = b["box"]
                x, y, w, h = (float(box[k]) for k in ("x", "y", "w", "h"))
                ann.boxes.append(Box(x, y, x + w, y + h, str(b["class_name"]), confidence=float(b.get("score", 1.0))))
            except (KeyError, TypeError, ValueError):
                raise ContractError(f"infer-result.json: asset {asset!r} box {i} is malformed: {b!r}"[:200]) from None
        out[asset_key(asset)] = ann
    return out
