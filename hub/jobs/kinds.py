"""The table of job kinds: what a job of each kind does, registered by the module that owns it.

* :class:`ExecutorKind` — training, mining, inference: ``prepare`` lays out the executor's inputs,
  a backend runs the image, ``finish`` turns ``/out`` into rows (a model, predictions, scores).
* :class:`InternalKind` — imports, exports, analysis, evaluation, conversion, rollouts: Python run
  by the runner in a worker thread with a progress callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.jobs.base import ExecutorImage
from hub.jobs.contract import InputSet


class Cancelled(Exception):
    """Raised inside an internal job's progress callback once a cancel was requested."""


@dataclass
class JobContext:
    """What a job function may use: the database, the workspace and the hub's settings."""

    database: Any
    workspace: Path
    settings: Any = None
    extras: dict = field(default_factory=dict)


@dataclass
class PreparedRun:
    image: ExecutorImage
    config: dict
    inputs: InputSet
    training: bool = False
    mining: bool = False
    infer: bool = False


Progress = Callable[[float, str], None]


@dataclass
class ExecutorKind:
    prepare: Callable[[JobContext, dict], PreparedRun]
    finish: Callable[[JobContext, dict, Path], dict]


@dataclass
class InternalKind:
    run: Callable[[JobContext, dict, Progress], dict]


KINDS: dict[str, ExecutorKind | InternalKind] = {}


def register(name: str, kind: ExecutorKind | InternalKind) -> None:
    KINDS[name] = kind


def category(name: str) -> str:
    return "executor" if isinstance(KINDS.get(name), ExecutorKind) else "internal"
