#!/usr/bin/env bash
# Fresh machine -> the test suite: install (same as demo), then pytest. The suite also builds and runs
# the Kotlin detector-core tests and parses the app sources (see tests/test_android_core.py, test_ios_core.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m pytest -q "$@"
