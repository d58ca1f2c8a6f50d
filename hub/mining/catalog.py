"""The mining algorithms as the pages, the API and the CLI list them (from :data:`detkit.scoring.ALGORITHMS`)."""

from __future__ import annotations

from detkit import scoring


def algorithm_table() -> list[dict]:
    return [{"name": a.name, "needs": a.needs, "extra_inferences": a.extra_inferences, "formula": a.formula,
             "single_pass": a.extra_inferences == 0, "default": a.name == scoring.DEFAULT_ALGORITHM}
            for a in scoring.ALGORITHMS.values()]
