"""Task settings: the img-man templates, the user's ``config.yaml`` over them, validated once.

Each key has one rule in :data:`RULES`; an unknown key is kept (YMIR passes platform keys through)
but a known key with a bad value is refused with :class:`detkit.errors.BadInput` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from detkit.errors import BadInput
from executor.contract import Env, load_task_config, read_yaml

IMG_MAN = Path(__file__).resolve().parent / "img-man"
TEMPLATES = {
    "training": "training-template.yaml",
    "mining": "mining-template.yaml",
    "infer": "infer-template.yaml",
}


def _int(lo: int, hi: int | None = None) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int | str):
            raise ValueError("expected an integer")
        v = int(v)
        if v < lo or (hi is not None and v > hi):
            raise ValueError(f"expected an integer in [{lo}, {hi if hi is not None else 'inf'}]")
        return v

    return check


def _float(lo: float, hi: float | None = None, lo_open: bool = False) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if isinstance(v, bool):
            raise ValueError("expected a number")
        v = float(v)
        if v < lo or (lo_open and v == lo) or (hi is not None and v > hi):
            raise ValueError(f"expected a number in {'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}]")
        return v

    return check


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "1", "0"):
        return v.lower() in ("true", "yes", "1")
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    raise ValueError("expected true or false")


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str) or v not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return v

    return check


def _mining_algorithm(v: Any) -> str:
    """A :data:`detkit.scoring.ALGORITHMS` name (or an alias), returned as its canonical name."""
    from detkit.scoring import ALGORITHMS, algorithm

    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"expected one of {', '.join(ALGORITHMS)}")
    try:
        return algorithm(v.strip()).name
    except BadInput:
        raise ValueError(f"unknown mining algorithm: choose from {', '.join(ALGORITHMS)}") from None


def _input_size(v: Any) -> int:
    v = _int(64, 2048)(v)
    if v % 32:
        raise ValueError("must be a multiple of 32")
    return v


def _class_names(v: Any) -> list[str]:
    if not isinstance(v, list) or not v or not all(isinstance(n, str) and n.strip() for n in v):
        raise ValueError("expected a non-empty list of class names")
    if len(set(v)) != len(v):
        raise ValueError("class names must be unique")
    return [str(n) for n in v]


def _export_format(v: Any) -> str:
    if not isinstance(v, str) or "voc" not in v.lower():
        raise ValueError("this executor reads VOC XML annotations: use det-voc:raw")
    return v


def _paths(v: Any) -> list[str]:
    if isinstance(v, str) and v:
        return [v]
    if isinstance(v, list) and all(isinstance(p, str) and p for p in v):
        return list(v)
    raise ValueError("expected a path or a list of paths")


RULES: dict[str, Callable[[Any], Any]] = {
    "epochs": _int(1, 10000),
    "batch_size": _int(1, 1024),
    "learning_rate": _float(0.0, 10.0, lo_open=True),
    "weight_decay": _float(0.0, 1.0),
    "input_size": _input_size,
    "augment_flip": _bool,
    "augment_scale_jitter": _bool,
    "augment_color_jitter": _bool,
    "seed": _int(0),
    "num_threads": _int(0, 256),
    "device": _choice("auto", "cpu", "cuda"),
    "conf_threshold": _float(0.0, 1.0),
    "max_det": _int(1, 10000),
    "mining_algorithm": _mining_algorithm,
    "uncertainty": _mining_algorithm,  # the old name of mining_algorithm, still accepted
    "borderline_threshold": _float(0.0, 1.0),
    "borderline_band": _float(0.0, 1.0),
    "save_period": _int(0),
    "class_names": _class_names,
    "export_format": _export_format,
    "gpu_count": _int(0),
    "pretrained_model_params": _paths,
    "model_params_path": _paths,
}


def template(kind: str) -> dict[str, Any]:
    """The shipped template of ``kind`` (training, mining, infer) as a dict."""
    return yaml.safe_load((IMG_MAN / TEMPLATES[kind]).read_text(encoding="utf-8")) or {}


def validate(config: dict[str, Any], where: str) -> dict[str, Any]:
    """Apply :data:`RULES` to every known key; raise :class:`BadInput` naming the first bad one."""
    out = dict(config)
    for key, rule in RULES.items():
        if key in out and out[key] is not None:
            try:
                out[key] = rule(out[key])
            except (ValueError, TypeError) as exc:
                raise BadInput(f"{where}: {key}={out[key]!r}: {exc}") from None
    return out


def resolve_mining_algorithm(cfg: dict[str, Any], user: dict[str, Any], where: str) -> dict[str, Any]:
    """Fold the old ``uncertainty`` key into ``mining_algorithm``; both given and different is refused."""
    old = cfg.pop("uncertainty", None)
    if old is None:
        return cfg
    chosen = user.get("mining_algorithm")
    if chosen is not None and cfg["mining_algorithm"] != old:
        raise BadInput(f"{where}: uncertainty={old!r} (the old name of mining_algorithm) contradicts "
                       f"mining_algorithm={chosen!r}: give only mining_algorithm")
    cfg["mining_algorithm"] = old
    return cfg


def load_config(env: Env, kind: str) -> dict[str, Any]:
    """Template of ``kind`` + ``config.yaml``, validated."""
    where = str(env.input["config_file"])
    cfg = validate(load_task_config(env, template(kind)), where)
    if kind == "training" and "class_names" not in cfg:
        raise BadInput(f"{env.input['config_file']}: class_names is missing (the classes to train)")
    if kind == "mining":
        cfg = resolve_mining_algorithm(cfg, read_yaml(env.input["config_file"], "config.yaml"), where)
    return cfg
