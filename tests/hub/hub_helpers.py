"""Test helpers: small hand-made dataset zips (beyond detkit.synth's sample)."""

from __future__ import annotations

import hashlib
import io
import re
import time
import zipfile
from pathlib import Path

from PIL import Image

from detkit.annotations import Box, ImageAnnotation
from detkit.io.voc import to_voc

ADMIN_PASSWORD = "admin-pass-123"


def csrf_from(html: str) -> str:
    """The CSRF token a page carries in its <meta name="csrf-token">."""
    m = re.search(r'name="csrf-token" content="([^"]+)"', html)
    if not m:
        raise AssertionError("no csrf token on the page")
    return m.group(1)


def jpeg(color=(200, 30, 30), size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def make_zip(path: Path, images: dict[str, list[tuple]], tags: dict[str, dict] | None = None,
             extra: dict[str, bytes] | None = None) -> Path:
    """A YMIR-layout zip: ``images`` maps a stem to boxes ``(name, x1, y1, x2, y2[, box_tags])``."""
    with zipfile.ZipFile(path, "w") as zf:
        for stem, boxes in images.items():
            # the colour comes from the name: the same stem gives the same image (same sha1)
            digest = hashlib.sha1(stem.encode()).digest()
            zf.writestr(f"images/{stem}.jpg", jpeg((digest[0], digest[1], digest[2])))
            ann = ImageAnnotation(filename=f"{stem}.jpg", width=64, height=48, tags=(tags or {}).get(stem, {}))
            for b in boxes:
                ann.boxes.append(Box(b[1], b[2], b[3], b[4], b[0], tags=b[5] if len(b) > 5 else {}))
            zf.writestr(f"gt/{stem}.xml", to_voc(ann))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def noise_zip(path: Path, n: int, seed: int = 0, size: tuple[int, int] = (256, 256)) -> Path:
    """A zip of ``n`` noise JPEGs (``images/{seed}_{i}.jpg``): they do not shrink, so ``n`` decides the bytes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
            zf.writestr(f"images/{seed}_{i}.jpg", buf.getvalue())
    return path


def wait_ready(api, version_id: int, timeout: float = 60) -> dict:
    """Poll the API until a version leaves ``importing``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = api.get(f"/api/v1/versions/{version_id}").get_json()
        if v["state"] != "importing":
            return v
        time.sleep(0.1)
    raise AssertionError(f"version {version_id} still importing after {timeout}s")


def shapes_hub(home: Path, sets=(("train", 16, 11), ("val", 6, 12)), env: dict | None = None):
    """A workspace with project "shapes" (circle/square/triangle) and one imported sample version per
    ``(name, images, seed)`` in ``sets`` (version ids 1, 2, ...). Returns ``run(*args, ok=True)``, the
    hub CLI on that workspace (``run.home`` is the folder)."""
    from click.testing import CliRunner

    from detkit.synth import write_sample_zip
    from hub.cli import main

    cli = CliRunner(env=env)

    def run(*args, ok=True):
        result = cli.invoke(main, ["--home", str(home), *args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run("init", "--admin-password", "password1")
    for c in ("circle", "square", "triangle"):
        run("class", "add", c)
    run("project", "create", "shapes", "--classes", "circle,square,triangle")
    for name, n, seed in sets:
        run("dataset", "import", "--project", "shapes", "--zip", str(write_sample_zip(home / f"{name}.zip", n, seed)),
            "--name", name)
    run.home = home
    return run
