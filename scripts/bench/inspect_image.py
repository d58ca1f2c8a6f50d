"""Benchmark: structural image check (``inspect_image``) vs full decode (``decode_image``).

    .venv/bin/python scripts/bench/inspect_image.py [--images 2000] [--repeat 5] [--seed 0]

Generates (in memory, seeded) small noise-textured JPEGs -- 64-128 px a side, a coarse random
colour field upscaled plus fine noise, quality 85, about 6 KB each -- checks that both functions
agree on every (format, width, height), then times each over the whole set (best of ``--repeat``)
and prints µs per image, the ratio, and a JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from detkit.imaging import decode_image, inspect_image  # noqa: E402

MAX_PIXELS = 50_000_000


def make_jpegs(count: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        w, h = (int(v) for v in rng.integers(64, 129, 2))
        coarse = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR), dtype=np.int16)
        pixels = np.clip(field + rng.integers(-40, 41, (h, w, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def best_time(fn, images: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for data in images:
            fn(data, MAX_PIXELS)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5, help="best of N passes over the set")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    images = make_jpegs(args.images, args.seed)
    sizes = np.array([len(d) for d in images])
    for data in images:  # same answers before timing anything
        info, dec = inspect_image(data, MAX_PIXELS), decode_image(data, MAX_PIXELS)
        assert (info.format, info.width, info.height) == (dec.format, dec.width, dec.height)

    t_inspect = best_time(inspect_image, images, args.repeat)
    t_decode = best_time(decode_image, images, args.repeat)
    us_inspect, us_decode = t_inspect / len(images) * 1e6, t_decode / len(images) * 1e6
    print(
        f"python {platform.python_version()}; {len(images)} JPEGs 64-128 px, quality 85, "
        f"{sizes.mean() / 1024:.1f} KB mean ({sizes.min()}-{sizes.max()} bytes); best of {args.repeat}"
    )
    print(f"  inspect_image  {us_inspect:8.2f} µs/image")
    print(f"  decode_image   {us_decode:8.2f} µs/image")
    print(f"  inspect is {us_decode / us_inspect:.1f}x faster than decode")
    print(
        json.dumps(
            {
                "images": len(images),
                "mean_bytes": round(float(sizes.mean())),
                "inspect_us": round(us_inspect, 2),
                "decode_us": round(us_decode, 2),
                "ratio": round(us_decode / us_inspect, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
