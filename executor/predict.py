"""Checkpoints and batched prediction with the torch model.

Decoding goes through :mod:`detkit.runtime.prepost`, exactly as every runtime backend decodes the
exported ONNX model, so validation mAP during training is the mAP a device will see.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from detkit.errors import BadModel, Unavailable
from detkit.manifest import ModelSpec
from detkit.runtime.prepost import Letterbox, decode_centernet, normalize, unletterbox
from executor.model import STRIDE, Arch, Detector, ExportModel

CHECKPOINT_FORMAT = "ymir-edge-executor/1"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes xyxy (K,4), scores (K,), class ids (K,)


def make_spec(class_names: list[str], input_size: int) -> ModelSpec:
    """The :class:`ModelSpec` of the built-in detector for these classes and input size."""
    return ModelSpec(class_names=list(class_names), input_size=input_size, mean=MEAN, std=STD, stride=STRIDE)


def save_checkpoint(path: Path, model: Detector, spec: ModelSpec, **extra) -> None:
    """A ``.pt`` holding the weights, the architecture and the model spec (plain types only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"format": CHECKPOINT_FORMAT, "arch": model.arch.to_dict(), "spec": spec.to_json(),
                "state_dict": state, **extra}, path)


def load_checkpoint(path: Path) -> tuple[dict, ModelSpec]:
    """Read a checkpoint written by :func:`save_checkpoint`; anything else raises :class:`BadModel`."""
    if not path.is_file():
        raise BadModel(f"model file not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a foreign/corrupt file
        raise BadModel(f"{path} is not a checkpoint of this executor: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise BadModel(f"{path} is not a checkpoint of this executor (format {CHECKPOINT_FORMAT})")
    return ckpt, ModelSpec.from_json(ckpt["spec"], where=str(path))


def load_model(path: Path, device: torch.device) -> tuple[Detector, ModelSpec]:
    """Build the detector a checkpoint describes, in eval mode on ``device``."""
    ckpt, spec = load_checkpoint(path)
    model = Detector(Arch.from_dict(ckpt["arch"]))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise BadModel(f"{path}: weights do not fit the stored architecture: {exc}") from None
    return model.to(device).eval(), spec


@torch.no_grad()
def raw_outputs(model: Detector, images: np.ndarray, spec: ModelSpec, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """``(heatmap, distances)`` numpy outputs for uint8 NHWC letterboxed images."""
    x = torch.from_numpy(normalize(images, spec.mean, spec.std)).to(device)
    heatmap, distances = ExportModel(model)(x)
    return heatmap.float().cpu().numpy(), distances.float().cpu().numpy()


def predict(
    model: Detector,
    images: np.ndarray,
    lbs: list[Letterbox],
    spec: ModelSpec,
    device: torch.device,
    conf: float,
    max_det: int = 100,
) -> list[Detections]:
    """Detections in original-image pixels for a batch of letterboxed images."""
    heatmap, distances = raw_outputs(model, images, spec, device)
    decoded = decode_centernet(heatmap, distances, spec.stride, conf=conf, max_det=max_det)
    return [(unletterbox(b, lb), s, c) for (b, s, c), lb in zip(decoded, lbs, strict=True)]


def pick_device(choice: str = "auto", gpu_count: int | None = None) -> torch.device:
    """``cuda`` when asked or available (and the platform gave GPUs), else ``cpu``."""
    if choice == "cpu" or gpu_count == 0:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if choice == "cuda":
        raise Unavailable("device: cuda was asked for but no CUDA device is available (use auto or cpu)")
    return torch.device("cpu")
