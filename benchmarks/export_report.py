"""Export both shared checkpoints to every format, verify each artefact, and write the README table.

Usage: python benchmarks/export_report.py [--size 640] [--out runs/export_report]
Writes benchmarks/results/export_table.md (sizes, export seconds, verify figures) and .json.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from featherface_mobile.export import ExportOptions, export
from featherface_mobile.paths import shared_dir

VARIANTS = [("onnx", {}), ("tflite", {}), ("tflite", {"fp16": True}), ("tflite", {"int8": True}),
            ("coreml", {}), ("coreml", {"int8": True})]


def main() -> None:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--out", type=Path, default=Path("runs/export_report"))
    a = ap.parse_args()
    shared = shared_dir()
    checkpoints = {"retinaface-mnet025": shared / "weights/retinaface_mnet025/mobilenet0.25_Final.pth",
                   "featherface-v1": shared / "weights/featherface/featherface_v1_592k.pth"}
    rows, totals = [], {}
    for name, weights in checkpoints.items():
        t0 = time.perf_counter()
        for fmt, opts in VARIANTS:
            res = export(weights, model=name, formats=[fmt], options=ExportOptions(size=a.size, **opts), out=a.out,
                         keep_failed=True, log=lambda *_: None)
            for art in res.artefacts + res.failed:
                v = art.verify
                rows.append({"model": name, "format": fmt, "precision": art.precision, "file": art.path.name,
                             "kb": round(art.bytes / 1024), "export_s": round(art.seconds, 1), "passed": art.passed,
                             "max_abs": max(e.max_abs for e in v.outputs.values()), "f1": round(v.f1, 3), "gate": v.gate})
                print(rows[-1], flush=True)
        totals[name] = round(time.perf_counter() - t0, 1)
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "export_table.json").write_text(json.dumps({"size": a.size, "rows": rows, "total_s": totals}, indent=1))
    lines = [f"Input {a.size}x{a.size}; verified on 8 held-out WIDER images against PyTorch "
             "(Core ML: MIL-level check on Linux).", "",
             "| model | format | precision | KB | export s | max abs err | face F1 | verify |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['format']} | {r['precision']} | {r['kb']} | {r['export_s']} | "
                     f"{r['max_abs']:.1e} | {r['f1']:.3f} | {'PASS' if r['passed'] else 'FAIL'}: {r['gate']} |")
    lines += ["", "Export + verify of all formats, per model (s): " + ", ".join(f"{k} {v}" for k, v in totals.items())]
    (out_dir / "export_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
