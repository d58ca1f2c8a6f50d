"""Mining as a workflow: preparation of mining data, mining jobs that make a version of the top-k.

* :func:`submit_prepare` (:mod:`.prepare`): exclude used assets, exact and near duplicates, filters,
  sample/chunk → a ``mining_prepare`` job whose result is ``{"version_id", "report"}``.
* :func:`submit_mining` (:mod:`.mine`): model (+ stage) × version(s) × algorithm × top-k → a ``mining`` job
  whose result is ``{"version_id", "topk", "pool", ...}``: the top-k with their scores (and predictions).
"""

from hub.mining.mine import mining_image, submit_mining
from hub.mining.prepare import submit_prepare

__all__ = ["mining_image", "submit_mining", "submit_prepare"]
