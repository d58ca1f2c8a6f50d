"""Mining tests: the iteration tests' helpers (scenario import, waits) on the import path."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "iterations"))
