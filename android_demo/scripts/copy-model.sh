#!/usr/bin/env bash
# Put a packaged model into the app without Gradle (same result as ./gradlew copyModel):
#   android_demo/scripts/copy-model.sh BUNDLE.zip [BENCHMARK_IMAGE.jpg]
# Unpacks manifest.json and the .tflite artefacts of a `featherface package` bundle into
# app/src/main/assets/model/ (ASSETS_DIR overrides the destination), replacing what was there.
set -euo pipefail
if [ $# -lt 1 ]; then echo "usage: $0 BUNDLE.zip [BENCHMARK_IMAGE]" >&2; exit 2; fi
BUNDLE=$1
IMAGE=${2:-}
DEST=${ASSETS_DIR:-$(cd "$(dirname "$0")/.." && pwd)/app/src/main/assets/model}
[ -f "$BUNDLE" ] || { echo "bundle not found: $BUNDLE (make one with: featherface package MODEL.tflite --out bundle.zip)" >&2; exit 2; }
rm -rf "$DEST"
mkdir -p "$DEST"
python3 - "$BUNDLE" "$DEST" <<'PY'
import sys, zipfile, pathlib
bundle, dest = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(bundle) as z:
    names = [n for n in z.namelist() if "/" not in n and (n == "manifest.json" or n.endswith(".tflite"))]
    if "manifest.json" not in names:
        sys.exit(f"{bundle}: no manifest.json at the top level; is it a `featherface package` zip?")
    if not any(n.endswith(".tflite") for n in names):
        sys.exit(f"{bundle}: no .tflite artefact; export one (featherface export --format tflite) and package it")
    for n in names:
        (dest / n).write_bytes(z.read(n))
        print(f"  {dest / n}")
PY
if [ -n "$IMAGE" ]; then
    cp "$IMAGE" "$DEST/benchmark.${IMAGE##*.}"
    echo "  $DEST/benchmark.${IMAGE##*.}"
fi
