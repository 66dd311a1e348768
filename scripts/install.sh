#!/usr/bin/env bash
# Create .venv and install featherface-mobile with every extra, at the versions verified together
# (constraints.txt). Idempotent: a second run only checks. torch==2.13.0 is the CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q torch==2.13.0 -c constraints.txt
.venv/bin/python -m pip install -q -e '.[all,test]' -c constraints.txt
