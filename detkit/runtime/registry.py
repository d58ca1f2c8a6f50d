"""The one table of runtime backends, and :func:`load` which turns a model or package into a Detector.

Adding a backend: write ``detkit/runtime/<key>.py`` exposing ``KEY``, ``EXTRA``, ``SUFFIXES``,
``Config`` (a dataclass), ``probe() -> (ok, reason)`` and ``open_session(path, device, config)``,
then add one row to :data:`BACKENDS`, a line to ``docs/model-package.md`` and a test.
"""

from __future__ import annotations

import importlib
import json
import logging
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType

from detkit.errors import BadInput, BadModel, Unavailable
from detkit.manifest import METADATA_KEY, ModelSpec
from detkit.package import MANIFEST, open_package, sha256_file
from detkit.runtime.base import Detector, check_io

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    """A row of the table: the key users pass, and the module implementing it."""

    key: str
    module: str
    description: str


BACKENDS: dict[str, Backend] = {
    b.key: b
    for b in (
        Backend("onnxruntime", "detkit.runtime.onnxruntime", "onnxruntime on CPU (or CUDA); the default"),
        Backend("openvino", "detkit.runtime.openvino", "OpenVINO IR or ONNX on Intel CPU/GPU/NPU"),
        Backend("tensorrt", "detkit.runtime.tensorrt", "TensorRT 10 engines on NVIDIA GPUs"),
    )
}
DEFAULT_BACKEND = "onnxruntime"
SIDE_SPEC_SUFFIX = ".spec.json"  # model.xml -> model.spec.json beside it


def backend_module(key: str) -> ModuleType:
    """The module of backend ``key`` (importing it never imports the SDK)."""
    if key not in BACKENDS:
        raise BadInput(f"unknown runtime backend {key!r}; known: {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[key].module)


def available_backends() -> dict[str, tuple[bool, str]]:
    """``{key: (ok, reason)}`` for every backend in the table, probing each SDK."""
    out = {}
    for key in BACKENDS:
        try:
            out[key] = backend_module(key).probe()
        except Exception as exc:  # a broken SDK install must show up here, not crash the caller
            out[key] = (False, f"unavailable: {exc}")
    return out


def _backend_for_suffix(path: Path) -> str:
    for key in BACKENDS:
        if path.suffix.lower() in backend_module(key).SUFFIXES:
            return key
    raise BadModel(f"{path}: unknown model file type {path.suffix!r} (expected .onnx, .xml, .engine or a package)")


def _config(module: ModuleType, config: dict):
    names = {f.name for f in fields(module.Config)}
    unknown = sorted(set(config) - names)
    if unknown:
        raise BadInput(f"backend {module.KEY}: unknown settings {unknown}; known: {sorted(names)}")
    return module.Config(**config)


def onnx_metadata(path: Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file via the ``onnx`` package (empty if it is not installed)."""
    try:
        import onnx
    except ImportError:
        return {}
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # the backend already reports unreadable models; metadata is best effort here
        return {}
    return {p.key: p.value for p in model.metadata_props}


def find_spec(model_path: Path, metadata: dict[str, str]) -> ModelSpec | None:
    """The spec from the model's own metadata, else a ``<stem>.spec.json`` beside it, else ``None``."""
    raw = metadata.get(METADATA_KEY)
    if raw is None and model_path.suffix.lower() == ".onnx":
        raw = onnx_metadata(model_path).get(METADATA_KEY)
    if raw is not None:
        return ModelSpec.from_json(raw, f"{model_path}: {METADATA_KEY} metadata")
    side = model_path.with_name(model_path.stem + SIDE_SPEC_SUFFIX)
    if side.is_file():
        return ModelSpec.from_json(side.read_text(), str(side))
    return None


def load(
    package_or_model: str | Path,
    backend: str | None = None,
    device: str = "cpu",
    *,
    batch_size: int = 8,
    warmup: bool = True,
    **config,
) -> Detector:
    """Open a model file (``.onnx``, ``.xml`` IR, ``.engine``) or a package (folder or zip).

    ``backend``: a key of :data:`BACKENDS`; ``None`` takes the package's backend, or the one that
    opens the file's type (``onnxruntime`` for ``.onnx``). ``config``: that backend's ``Config``
    fields. A package is verified (sha256 of every file) first. Raises :class:`BadModel` for a file
    that is not a usable model and :class:`Unavailable` when the backend's SDK is missing.
    """
    path = Path(package_or_model)
    manifest, keep = None, []
    if path.is_dir() or (path.is_file() and zipfile.is_zipfile(path)):
        folder, manifest, tmp = open_package(path)
        keep = [tmp] if tmp else []
        model_path = folder / manifest.model
    elif path.is_file():
        model_path = path
    else:
        raise BadModel(f"{path}: no such model file or package")
    try:
        key = backend or (manifest.backend if manifest else None) or _backend_for_suffix(model_path)
        module = backend_module(key)
        ok, reason = module.probe()
        if not ok:
            raise Unavailable(f"backend {key} {reason}")
        if model_path.suffix.lower() not in module.SUFFIXES:
            raise BadModel(f"{model_path}: backend {key} opens {', '.join(module.SUFFIXES)} files, not {model_path.suffix!r}")
        session = module.open_session(model_path, device, _config(module, config))
        spec = manifest.spec if manifest else find_spec(model_path, session.metadata())
        where = str(path / MANIFEST) if manifest else str(model_path)
        if spec is not None:
            check_io(spec, session.inputs, session.outputs, where)
        else:
            log.warning("%s: no %s metadata; detect() is disabled, run() works", model_path, METADATA_KEY)
        sha = manifest.files[manifest.model] if manifest else sha256_file(model_path)
        det = Detector(
            session=session,
            spec=spec,
            backend=key,
            model_path=model_path,
            sha256=sha,
            batch_size=batch_size,
            package=json.loads(manifest.to_json()) if manifest else {},
            _keep=keep,
        )
        if hasattr(session, "close"):
            det._closers.append(session.close)
        if warmup:
            det.warmup()
        return det
    except BaseException:
        for tmp in keep:
            tmp.cleanup()
        raise
