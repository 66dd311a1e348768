"""INT8 accuracy against float, on the held-out split: the README's quantization table in one run.

For each shared checkpoint: the float PyTorch model, the TFLite INT8 artefact (default calibration:
the train split) and, where exported, the ONNX QDQ INT8 artefact, each evaluated with
`featherface_mobile.evaluate.evaluate` on the eval split of wider_val_416 (never used for
calibration or QAT) at the export size; AP deltas in points (x100).

Usage: python benchmarks/int8_accuracy.py [--size 640] [--formats tflite,onnx] [--work runs/bench/exports]
(artefacts already in --work, with their .verify.json, are reused: run after export_report.py)
Writes benchmarks/results/int8_accuracy.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from featherface_mobile.evaluate import evaluate
from featherface_mobile.export import ExportOptions, export
from featherface_mobile.paths import shared_dir, wider_val_dir
from featherface_mobile.runtime import load_runner
from featherface_mobile.splits import split_images

CHECKPOINTS = {"retinaface-mnet025": "weights/retinaface_mnet025/mobilenet0.25_Final.pth",
               "featherface-v1": "weights/featherface/featherface_v1_592k.pth"}
RESULTS = Path(__file__).resolve().parent / "results"
SUBSETS = ("easy", "medium", "hard")


def ap_of(path: Path, data: Path, size: int, images: list[str]) -> dict[str, float]:
    return evaluate(load_runner(path), data, size=size, images=images).ap


def int8_artefact(weights: Path, name: str, fmt: str, size: int, work: Path) -> tuple[Path, dict]:
    """The INT8 artefact and its verify report, exported unless `work` already holds both."""
    from featherface_mobile.export import get_format
    from featherface_mobile.export.pipeline import artefact_name

    options = ExportOptions(size=size, int8=True)
    path = work / artefact_name(name, size, get_format(fmt).suffix, "int8", options)
    report = path.with_name(path.name + ".verify.json")
    if not (path.is_file() and report.is_file()):
        export(weights, model=name, formats=[fmt], options=options, out=work, keep_failed=True, log=lambda *_: None)
    return path, json.loads(report.read_text())


def main() -> None:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--formats", default="tflite,onnx", help="INT8 formats to export and evaluate")
    ap.add_argument("--work", type=Path, default=Path("runs/bench/exports"))
    a = ap.parse_args()
    shared, data = shared_dir(), wider_val_dir()
    if shared is None or data is None:
        raise SystemExit("the shared folder is absent: set FEATHERFACE_SHARED")
    images = split_images("eval", data)
    rows = []
    for name, rel in CHECKPOINTS.items():
        weights = shared / rel
        t0 = time.perf_counter()
        base = ap_of(weights, data, a.size, images)
        rows.append({"model": name, "artefact": "PyTorch float32", "ap": base, "verify_f1": None, "kb": None})
        print(rows[-1], flush=True)
        for fmt in [f for f in a.formats.split(",") if f]:
            path, report = int8_artefact(weights, name, fmt, a.size, a.work)
            got = ap_of(path, data, a.size, images)
            rows.append({"model": name, "artefact": f"{fmt} INT8 ({path.name})", "ap": got,
                         "delta_points": {s: round(100 * (got[s] - base[s]), 2) for s in SUBSETS},
                         "verify_f1": round(report["f1"], 3), "verify_passed": report["passed"],
                         "kb": round(path.stat().st_size / 1024)})
            print(rows[-1], flush=True)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "int8_accuracy.json").write_text(json.dumps({"size": a.size, "images": len(images), "rows": rows}, indent=1))
    lines = [f"Eval split of wider_val_416 ({len(images)} images, none used for calibration), input {a.size}x{a.size}; "
             "AP at IoU 0.5; delta = INT8 - float in AP points; target: within 0.5 points.", "",
             "| model | artefact | KB | AP easy | AP medium | AP hard | delta easy / medium / hard | verify F1 |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        d = r.get("delta_points")
        lines.append(f"| {r['model']} | {r['artefact']} | {r['kb'] or ''} | {r['ap']['easy']:.4f} | {r['ap']['medium']:.4f} | "
                     f"{r['ap']['hard']:.4f} | {' / '.join(f'{d[s]:+.2f}' for s in SUBSETS) if d else ''} | "
                     f"{r['verify_f1'] if r['verify_f1'] is not None else ''} |")
    (RESULTS / "int8_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
