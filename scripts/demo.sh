#!/usr/bin/env bash
# Fresh machine -> the main job: install, then `featherface demo` (detect, export to every format, verify).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/featherface demo "$@"
