"""The committed tiny detector is the one its recipe (tinydet.py) makes: a recipe change without a regenerated
fixture would silently train a new model on every CI machine, whose int8 figures differ by CPU."""

from __future__ import annotations

import onnx
import tinydet

from detkit.manifest import METADATA_KEY, ModelSpec


def test_the_committed_tiny_detector_matches_its_recipe():
    fixtures = sorted(p.name for p in tinydet.FIXTURES.glob("tinydet-*.onnx"))
    assert fixtures == [f"tinydet-{tinydet.key()}.onnx"], (
        "regenerate with: .venv/bin/python tests/converters/tinydet.py")
    model = onnx.load(str(tinydet.FIXTURES / fixtures[0]))
    meta = {p.key: p.value for p in model.metadata_props}
    assert ModelSpec.from_json(meta[METADATA_KEY]) == tinydet.spec()
