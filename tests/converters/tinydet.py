"""A tiny CenterNet-style detector, quickly fitted on seeded scenes, exported as a contract ONNX.

Test helper only (the real trainer is ``executor/``): about 40k parameters, 128 px input, stride
4, trained for a few seconds so that its peaks are real objects — quantization and backend
agreement are then tested on meaningful activations, not random weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from detkit.manifest import METADATA_KEY, ModelSpec
from detkit.runtime.prepost import letterbox, normalize
from detkit.synth import CLASSES, scenes

SIZE = 128
STRIDE = 4
STEPS = 260
VERSION = "tinydet-2"  # bump to invalidate the cached model


def spec() -> ModelSpec:
    return ModelSpec(class_names=list(CLASSES), input_size=SIZE, stride=STRIDE, mean=[0.5] * 3, std=[0.25] * 3)


def _data(count: int, seed: int):
    sp = spec()
    xs, anns = [], []
    for img, ann in scenes(count, seed):
        canvas, lb = letterbox(img, SIZE, sp.pad_value)
        xs.append(canvas)
        anns.append([(b.x1 * lb.scale, b.y1 * lb.scale, b.x2 * lb.scale, b.y2 * lb.scale, CLASSES.index(b.name)) for b in ann.boxes])
    return normalize(np.stack(xs), sp.mean, sp.std), anns


def _targets(anns, classes: int):
    cells = SIZE // STRIDE
    heat = np.zeros((len(anns), classes, cells, cells), np.float32)
    dist = np.zeros((len(anns), 4, cells, cells), np.float32)
    mask = np.zeros((len(anns), 1, cells, cells), np.float32)
    yy, xx = np.mgrid[0:cells, 0:cells]
    cx_grid, cy_grid = (xx + 0.5) * STRIDE, (yy + 0.5) * STRIDE
    for i, boxes in enumerate(anns):
        for x1, y1, x2, y2, c in sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):
            cx, cy = (x1 + x2) / 2 / STRIDE - 0.5, (y1 + y2) / 2 / STRIDE - 0.5
            sx, sy = max((x2 - x1) / STRIDE / 6, 0.6), max((y2 - y1) / STRIDE / 6, 0.6)
            g = np.exp(-((xx - cx) ** 2) / (2 * sx**2) - ((yy - cy) ** 2) / (2 * sy**2))
            heat[i, c] = np.maximum(heat[i, c], g)
            ci, cj = int(np.clip(round(cy), 0, cells - 1)), int(np.clip(round(cx), 0, cells - 1))
            heat[i, c, ci, cj] = 1.0
            inside = g > 0.3
            dist[i, 0][inside] = (cx_grid - x1)[inside]
            dist[i, 1][inside] = (cy_grid - y1)[inside]
            dist[i, 2][inside] = (x2 - cx_grid)[inside]
            dist[i, 3][inside] = (y2 - cy_grid)[inside]
            mask[i, 0][inside] = 1.0
    return heat, dist, mask


def build(out: Path, steps: int = STEPS, seed: int = 0) -> Path:
    """Train and export to ``out`` (an .onnx path); returns it."""
    import onnx
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    classes = len(CLASSES)

    def block(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.s2 = nn.Sequential(block(3, 16, 2), block(16, 16, 1))
            self.s4 = nn.Sequential(block(16, 32, 2), block(32, 32, 1))
            self.s8 = nn.Sequential(block(32, 48, 2), block(48, 48, 1))
            self.lat = nn.Conv2d(48, 32, 1)
            self.fuse = block(32, 32, 1)
            self.heat = nn.Conv2d(32, classes, 1)
            self.dist = nn.Conv2d(32, 4, 1)
            nn.init.constant_(self.heat.bias, -2.2)

        def forward(self, x):
            f4 = self.s4(self.s2(x))
            f8 = self.s8(f4)
            f = self.fuse(f4 + nn.functional.interpolate(self.lat(f8), scale_factor=2.0, mode="nearest"))
            return torch.sigmoid(self.heat(f)), nn.functional.softplus(self.dist(f)) * 8.0

    x, anns = _data(320, seed=1234)
    heat_t, dist_t, mask_t = (torch.from_numpy(a) for a in _targets(anns, classes))
    x = torch.from_numpy(x)
    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=5e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=steps)
    rng = np.random.default_rng(seed)
    net.train()
    for _ in range(steps):
        idx = torch.from_numpy(rng.choice(len(x), 16, replace=False))
        hp, dp = net(x[idx])
        ht, dt, m = heat_t[idx], dist_t[idx], mask_t[idx]
        hp = hp.clamp(1e-4, 1 - 1e-4)
        pos = (ht == 1).float()
        focal = -(pos * (1 - hp) ** 2 * torch.log(hp) + (1 - pos) * (1 - ht) ** 4 * hp**2 * torch.log(1 - hp)).sum()
        focal = focal / pos.sum().clamp(min=1)
        scale = (dt[:, 0:1] + dt[:, 2:3] + dt[:, 1:2] + dt[:, 3:4]).clamp(min=1) / 2
        l1 = ((dp - dt).abs() / scale * m).sum() / m.sum().clamp(min=1)
        loss = focal + l1
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        net, torch.zeros(1, 3, SIZE, SIZE), str(out), dynamo=False, opset_version=17,
        input_names=["images"], output_names=["heatmap", "distances"],
        dynamic_axes={"images": {0: "batch"}, "heatmap": {0: "batch"}, "distances": {0: "batch"}},
    )
    model = onnx.load(str(out))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, spec().to_json()
    onnx.save(model, str(out))
    return out


FIXTURES = Path(__file__).resolve().parent / "fixtures"


def key() -> str:
    """What names a trained model: this file's text (the recipe) and VERSION."""
    return hashlib.sha256(json.dumps([VERSION, STEPS, Path(__file__).read_text()]).encode()).hexdigest()[:12]


def cached(cache_dir: Path) -> Path:
    """The trained model: the committed fixture of this recipe, else built once and cached in ``cache_dir``.

    The fixture is there because training is not bit-identical across CPUs (their float kernels
    differ), and the int8 tests hold figures of one model: on a CI machine of another CPU a model
    trained there quantized 3 points worse. Regenerate it after changing this file:
    ``.venv/bin/python tests/converters/tinydet.py``.
    """
    fixture = FIXTURES / f"tinydet-{key()}.onnx"
    if fixture.is_file():
        return fixture
    path = cache_dir / f"tinydet-{key()}.onnx"
    if not path.is_file():
        tmp = path.with_suffix(".tmp.onnx")
        build(tmp)
        tmp.replace(path)
    return path


def for_session(request, tmp_path_factory) -> Path:
    """The cached model for a pytest session: pytest's cache folder, else a session temp folder."""
    cache = getattr(request.config, "cache", None)
    return cached(Path(cache.mkdir("ymir-tinydet")) if cache else tmp_path_factory.mktemp("tinydet"))


if __name__ == "__main__":  # regenerate the committed fixture of this recipe (drops stale ones)
    for stale in FIXTURES.glob("tinydet-*.onnx"):
        stale.unlink()
    FIXTURES.mkdir(exist_ok=True)
    print(build(FIXTURES / f"tinydet-{key()}.onnx"))
