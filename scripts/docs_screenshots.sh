#!/usr/bin/env bash
# Retake the user guide's screenshots into docs/img/ (headless Chromium + Mosquitto; ~1.5 min on 2 cores).
# Without this, tests/e2e/test_docs_screenshots.py still walks every page but writes to a temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
YMIR_DOCS_SCREENSHOTS=1 exec .venv/bin/python -m pytest -p no:cacheprovider -q -s tests/e2e/test_docs_screenshots.py "$@"
