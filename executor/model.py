"""The built-in detector: a small CenterNet/TTFNet-style network that trains on a CPU.

Depthwise-separable backbone to stride 32, a light FPN back down to stride 4, and two heads:
``heatmap`` (one channel per class; logits in training, sigmoid in :class:`ExportModel`) and
``distances`` (left, top, right, bottom from the cell centre, in input pixels; softplus keeps them
positive without the dead units ReLU gave at this learning rate). About 0.37M parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

STRIDE = 4
DIST_SCALE = 16.0  # softplus(0) * 16 ~ 11 px: a sensible first guess for box half-sizes
HEATMAP_PRIOR_BIAS = -2.19  # sigmoid = 0.1, CenterNet's prior: stable focal loss at the start


@dataclass(frozen=True)
class Arch:
    """Widths of the network; stored in every checkpoint so it can be rebuilt exactly."""

    num_classes: int
    stem: int = 16
    widths: tuple[int, ...] = (24, 48, 128, 256)  # strides 4, 8, 16, 32
    depths: tuple[int, ...] = (1, 2, 3, 3)
    neck: int = 64

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Arch:
        return cls(
            num_classes=int(data["num_classes"]),
            stem=int(data.get("stem", 16)),
            widths=tuple(int(w) for w in data.get("widths", cls.widths)),
            depths=tuple(int(d) for d in data.get("depths", cls.depths)),
            neck=int(data.get("neck", 64)),
        )


def _conv_bn(cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DWSep(nn.Module):
    """Depthwise 3x3 (optionally strided) + pointwise 1x1, residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.dw = _conv_bn(cin, cin, 3, stride, groups=cin)
        self.pw = _conv_bn(cin, cout, 1, act=stride != 1 or cin != cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return F.relu(x + y) if self.residual else y


class Detector(nn.Module):
    """Backbone + FPN + heads; ``forward`` returns ``(heatmap_logits, distances)``."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        self.stem = _conv_bn(3, arch.stem, 3, 2)
        stages, cin = [], arch.stem
        for width, depth in zip(arch.widths, arch.depths, strict=True):
            blocks = [DWSep(cin, width, 2)] + [DWSep(width, width) for _ in range(depth)]
            stages.append(nn.Sequential(*blocks))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.laterals = nn.ModuleList(_conv_bn(w, arch.neck, 1) for w in arch.widths)
        self.smooth = nn.ModuleList(DWSep(arch.neck, arch.neck) for _ in arch.widths[:-1])
        self.hm_head = nn.Sequential(DWSep(arch.neck, arch.neck), nn.Conv2d(arch.neck, arch.num_classes, 1))
        self.box_head = nn.Sequential(DWSep(arch.neck, arch.neck), nn.Conv2d(arch.neck, 4, 1))
        nn.init.constant_(self.hm_head[-1].bias, HEATMAP_PRIOR_BIAS)
        nn.init.normal_(self.box_head[-1].weight, std=0.01)
        nn.init.zeros_(self.box_head[-1].bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        p = self.laterals[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):  # top-down to stride 4
            p = self.laterals[i](feats[i]) + F.interpolate(p, scale_factor=2.0, mode="nearest")
            p = self.smooth[i](p)
        return self.hm_head(p), F.softplus(self.box_head(p)) * DIST_SCALE


class ExportModel(nn.Module):
    """What runtimes see: ``heatmap`` after sigmoid and ``distances`` (the ModelSpec outputs)."""

    def __init__(self, detector: Detector):
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, distances = self.detector(images)
        return torch.sigmoid(logits), distances


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
