"""A seeded active-learning scenario: an initial training set that lacks what the mining pool is full of.

The initial training set holds few triangles (the rare class); the mining pool over-represents them; the
validation and test sets are balanced. A model trained on the initial set is unsure about triangles, so a
good mining score picks the pool's triangle scenes, and labeling them lifts test mAP more than random
picks would. Used by the iteration tests and ``scripts/bench/al_lift.py``.

:func:`write_scenario` writes ``train.zip``, ``val.zip``, ``test.zip`` (YMIR-layout VOC with ground truth),
``pool.zip`` (images only: the pool is unlabeled) and ``pool_truth.json`` (the pool's ground truth keyed by
the image's sha1, for a test-only labeling oracle).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from detkit.io.voc import to_voc
from detkit.synth import scenes


@dataclass(frozen=True)
class Part:
    images: int
    class_weights: tuple[float, float, float]  # circle, square, triangle
    seed_offset: int


#: the default sizes (small enough for a CPU test in minutes)
PARTS = {
    "train": Part(60, (0.47, 0.47, 0.06), 1),
    "pool": Part(240, (0.2, 0.2, 0.6), 2),
    "val": Part(40, (1, 1, 1), 3),
    "test": Part(60, (1, 1, 1), 4),
}


def write_scenario(folder: str | Path, seed: int = 0, sizes: dict[str, int] | None = None,
                   weights: dict[str, tuple[float, float, float]] | None = None) -> dict[str, Path]:
    """Write the scenario's zips and the pool's truth under ``folder``; returns their paths by name.

    ``sizes`` and ``weights`` (circle, square, triangle) override a part's image count and class mix, e.g.
    ``weights={"pool": (0.45, 0.45, 0.1)}`` for a pool where the useful images are rare."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    truth: dict[str, dict] = {}
    for name, part in PARTS.items():
        count = (sizes or {}).get(name, part.images)
        path = folder / f"{name}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            mix = (weights or {}).get(name, part.class_weights)
            for img, ann in scenes(count, seed * 100 + part.seed_offset, mix, prefix=name):
                buf = io.BytesIO()
                img.save(buf, "JPEG", quality=90)
                data = buf.getvalue()
                zf.writestr(f"images/{ann.filename}", data)
                if name == "pool":
                    truth[hashlib.sha1(data).hexdigest()] = {
                        "filename": ann.filename, "width": ann.width, "height": ann.height,
                        "boxes": [{"class": b.name, "x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2}
                                  for b in ann.boxes]}
                else:
                    zf.writestr(f"gt/{Path(ann.filename).stem}.xml", to_voc(ann))
        out[name] = path
    out["pool_truth"] = folder / "pool_truth.json"
    out["pool_truth"].write_text(json.dumps(truth))
    return out
