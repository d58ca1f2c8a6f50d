"""The YMIR executor contract, read side: ``env.yaml``, ``config.yaml`` and the index files.

Schema (see ``docs/executor-contract.md``)::

    env.yaml: task_id, protocol_version, run_training, run_mining, run_infer,
              input:  {root_dir, assets_dir, annotations_dir, models_dir, training_index_file,
                       val_index_file, candidate_index_file, config_file}
              output: {root_dir, models_dir, tensorboard_dir, training_result_file,
                       mining_result_file, infer_result_file, monitor_file, executor_log_file}

Everything is validated here once; a bad file raises :class:`detkit.errors.BadInput` saying which
file and which key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from detkit.errors import BadInput
from executor.settings import Settings

INPUT_KEYS = {
    "root_dir": "",
    "assets_dir": "assets",
    "annotations_dir": "annotations",
    "models_dir": "models",
    "training_index_file": "train-index.tsv",
    "val_index_file": "val-index.tsv",
    "candidate_index_file": "candidate-index.tsv",
    "config_file": "config.yaml",
}
OUTPUT_KEYS = {
    "root_dir": "",
    "models_dir": "models",
    "tensorboard_dir": "tensorboard",
    "training_result_file": "models/result.yaml",
    "mining_result_file": "result.tsv",
    "infer_result_file": "infer-result.json",
    "monitor_file": "monitor.txt",
    "executor_log_file": "ymir-executor-out.log",
}


@dataclass
class Env:
    """A validated ``env.yaml``: which tasks to run and where every file is."""

    task_id: str
    protocol_version: str
    run_training: bool
    run_mining: bool
    run_infer: bool
    input: dict[str, Path] = field(default_factory=dict)
    output: dict[str, Path] = field(default_factory=dict)

    @property
    def monitor_file(self) -> Path:
        return self.output["monitor_file"]


def default_env_paths(settings: Settings) -> tuple[Path, Path, Path, Path]:
    """Monitor and log paths to use even when env.yaml itself is unreadable."""
    out = settings.out_dir
    return (
        settings.in_dir / "env.yaml",
        out / OUTPUT_KEYS["monitor_file"],
        out / OUTPUT_KEYS["executor_log_file"],
        out,
    )


def _remap(path: str, container_root: str, real_root: Path) -> Path:
    """Map a container path (``/in/...``) onto the real root when the two differ.

    A YMIR env.yaml written for docker names ``/in/...``; under the local backend the same file
    may be handed over unchanged, so such paths are re-rooted at ``YMIR_IN_DIR``/``YMIR_OUT_DIR``.
    """
    p = Path(path)
    root = Path(container_root)
    if real_root != root and (p == root or root in p.parents):
        return real_root / p.relative_to(root)
    return p


def _section(data: dict, name: str, keys: dict[str, str], root: Path, container_root: str, where: str):
    raw = data.get(name) or {}
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: '{name}' must be a mapping, got {type(raw).__name__}")
    out: dict[str, Path] = {}
    for key, default in keys.items():
        value = raw.get(key)
        if value is None or value == "":  # the hub writes "" for index files a task does not use
            out[key] = root / default if default else root
        elif not isinstance(value, str) or not value:
            raise BadInput(f"{where}: {name}.{key} must be a path string, got {value!r}")
        else:
            out[key] = _remap(value, container_root, root)
    return out


def _bool(data: dict, key: str, where: str) -> bool:
    value = data.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise BadInput(f"{where}: {key} must be true or false, got {value!r}")


def read_yaml(path: Path, what: str) -> dict:
    """Load a YAML mapping; missing, unparsable or non-mapping files raise :class:`BadInput`."""
    if not path.is_file():
        raise BadInput(f"{what} not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadInput(f"{what} {path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput(f"{what} {path}: expected a mapping at top level, got {type(data).__name__}")
    return data


def load_env(settings: Settings) -> Env:
    """Read and validate ``env.yaml`` from the input root."""
    path = settings.in_dir / "env.yaml"
    data = read_yaml(path, "env.yaml")
    where = str(path)
    task_id = data.get("task_id")
    if not isinstance(task_id, str | int) or task_id == "":
        raise BadInput(f"{where}: task_id is missing")
    env = Env(
        task_id=str(task_id),
        protocol_version=str(data.get("protocol_version", "")),
        run_training=_bool(data, "run_training", where),
        run_mining=_bool(data, "run_mining", where),
        run_infer=_bool(data, "run_infer", where),
        input=_section(data, "input", INPUT_KEYS, settings.in_dir, "/in", where),
        output=_section(data, "output", OUTPUT_KEYS, settings.out_dir, "/out", where),
    )
    if not (env.run_training or env.run_mining or env.run_infer):
        raise BadInput(f"{where}: nothing to do (run_training, run_mining and run_infer are all false)")
    return env


def resolve_input_path(env: Env, raw: str, base_key: str = "root_dir") -> Path:
    """Resolve a path from an index file or the config against the input roots."""
    p = _remap(raw, "/in", env.input["root_dir"])
    if p.is_absolute():
        return p
    for key in (base_key, "root_dir", "assets_dir", "annotations_dir", "models_dir"):
        candidate = env.input[key] / p
        if candidate.exists():
            return candidate
    return env.input[base_key] / p


def read_index(env: Env, key: str, with_annotations: bool) -> list[tuple[Path, Path | None]]:
    """Read an index file: ``asset<TAB>annotation`` lines (or just ``asset`` for candidates)."""
    path = env.input[key]
    if not path.is_file():
        raise BadInput(f"index file not found: {path} ({key})")
    rows: list[tuple[Path, Path | None]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split("\t")
        asset = resolve_input_path(env, parts[0], "assets_dir")
        ann = None
        if with_annotations:
            if len(parts) < 2 or not parts[1]:
                raise BadInput(f"{path}:{lineno}: expected '<asset path>\\t<annotation path>'")
            ann = resolve_input_path(env, parts[1], "annotations_dir")
        rows.append((asset, ann))
    return rows


def load_task_config(env: Env, defaults: dict[str, Any]) -> dict[str, Any]:
    """``config.yaml`` over the template ``defaults``; values are validated by the caller's table."""
    data = read_yaml(env.input["config_file"], "config.yaml")
    merged = dict(defaults)
    merged.update({k: v for k, v in data.items() if v is not None})
    return merged
