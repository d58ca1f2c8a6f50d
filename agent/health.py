"""Deploy-time health check: a model must run a sample input, with the declared output shapes,
finite values and within a latency budget, before it may replace the model being served."""

from __future__ import annotations

import time

import numpy as np

from agent.oip import DATATYPES
from detkit.errors import BadModel


def sample_inputs(detector) -> dict[str, np.ndarray]:
    """Deterministic inputs for every model input: dynamic batch as 1, other dynamic dims as the
    detector's input size (or 1 without a spec); values in [0, 1)."""
    spec = getattr(detector, "spec", None)
    size = spec.input_size if spec is not None else 1
    rng = np.random.default_rng(0)
    feeds = {}
    for t in detector.inputs:
        shape = [d if d > 0 else (1 if i == 0 else size) for i, d in enumerate(t["shape"])]
        dtype = np.dtype(DATATYPES[t["datatype"]])
        if dtype.kind == "f":
            feeds[t["name"]] = rng.random(shape).astype(dtype)
        else:
            feeds[t["name"]] = np.zeros(shape, dtype=dtype)
    return feeds


def check_health(detector, latency_budget_ms: float, runs: int = 3) -> dict:
    """Run the sample input ``runs`` times; raise :class:`BadModel` saying what is wrong.

    Returns ``{"latency_ms": median, "outputs": {name: shape}}``.
    """
    feeds = sample_inputs(detector)
    times = []
    out = {}
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        try:
            out = detector.run(feeds)
        except Exception as exc:
            raise BadModel(f"health check: the model fails on a sample input ({exc})") from None
        times.append((time.perf_counter() - t0) * 1000.0)
    declared = {t["name"]: t for t in detector.outputs}
    for name, t in declared.items():
        if name not in out:
            raise BadModel(f"health check: output {name!r} is missing")
        arr = np.asarray(out[name])
        shape = t["shape"]
        if arr.ndim != len(shape) or any(d > 0 and d != s for d, s in zip(shape, arr.shape, strict=True)):
            raise BadModel(f"health check: output {name!r} has shape {list(arr.shape)}, declared {shape}")
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise BadModel(f"health check: output {name!r} has {bad} non-finite values (NaN/inf)")
    latency = float(np.median(times))
    if latency > latency_budget_ms:
        raise BadModel(f"health check: {latency:.1f} ms per run is over the {latency_budget_ms:.0f} ms budget")
    if getattr(detector, "spec", None) is not None:
        try:
            detector.detect(np.full((detector.spec.input_size, detector.spec.input_size, 3), 114, np.uint8))
        except Exception as exc:
            raise BadModel(f"health check: detect() fails on a sample image ({exc})") from None
    return {"latency_ms": round(latency, 3), "outputs": {k: list(np.shape(v)) for k, v in out.items()}}
