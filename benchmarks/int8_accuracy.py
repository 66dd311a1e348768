"""INT8 accuracy against float, on the held-out split: the README's quantization table in one run.

For each trained model (the registry's weights: shared checkpoints, packaged V2): the float PyTorch
model, its post-training INT8 artefacts (TFLite full-integer, ONNX QDQ; calibration: the train
split) and, with --qat-steps N, the INT8 artefacts of `featherface quantize qat` (N steps on the
train split, learned ranges carried into each artefact; --qat-distill-only: distillation from the
float model alone) and, with --float-groups G, calibrated (and QAT) INT8 artefacts with those op
groups kept float, one row per variant (`featherface export --int8 --int8-float G`; with
--qat-float-in-training, one QAT run per variant that keeps those ops float in training too), each
evaluated with `featherface_mobile.evaluate.evaluate` on the eval split of wider_val_416 (never used for
calibration or QAT) at the export size; AP deltas in points (x100) against the float model.

Usage: python benchmarks/int8_accuracy.py [--size 640] [--formats tflite,onnx] [--qat-steps 300 [--qat-distill-only] [--qat-float-in-training]]
       [--float-groups heads,stride2]
       [--models retinaface-mnet025,featherface-v1,featherface-v2] [--work runs/bench/exports]
(artefacts already in --work, with their .verify.json, are reused)
Writes benchmarks/results/int8_accuracy.{md,json} and the table in README.md (between its markers).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path

from featherface_mobile.evaluate import evaluate
from featherface_mobile.export import ExportOptions
from featherface_mobile.models import get_spec
from featherface_mobile.errors import run_script
from featherface_mobile.paths import require_wider_val, resolve_weights_ref
from featherface_mobile.runtime import load_runner
from featherface_mobile.splits import split_images

MODELS = "retinaface-mnet025,featherface-v1,featherface-v2"
RESULTS = Path(__file__).resolve().parent / "results"
TRAIN_FLOAT = "float in training"
SUBSETS = ("easy", "medium", "hard")


def ap_of(path: Path, data: Path, size: int, images: list[str], model: str | None = None) -> dict[str, float]:
    return evaluate(load_runner(path, model=model), data, size=size, images=images).ap


def int8_artefact(weights: Path, name: str, fmt: str, size: int, work: Path,
                  float_groups: tuple[str, ...] = ()) -> tuple[Path, dict]:
    """The INT8 artefact and its verify report, exported unless `work` already holds both."""
    from featherface_mobile.export.pipeline import export_or_reuse

    return export_or_reuse(weights, name, fmt, ExportOptions(size=size, int8=True, int8_float=float_groups), work)


def delta_row(model: str, label: str, path: Path, report: dict, base: dict, data: Path, size: int,
              images: list[str]) -> dict:
    got = ap_of(path, data, size, images)
    return {"model": model, "artefact": f"{label} ({path.name})", "ap": got,
            "delta_points": {s: round(100 * (got[s] - base[s]), 2) for s in SUBSETS},
            "verify_f1": round(report["f1"], 3), "verify_passed": report["passed"], "kb": round(path.stat().st_size / 1024)}


def qat_rows(weights: Path, name: str, base: dict, data: Path, images: list[str], formats: list[str],
             variants: list[tuple[str, ...]], a: argparse.Namespace, train_float: tuple[str, ...] = ()) -> list[dict]:
    """`featherface quantize qat` rows: the float model of the QAT weights, then its INT8 artefacts with the
    learned ranges (full integer, then each float-group variant), each verified against the original model.
    With `train_float`: QAT keeps those op groups float in training as its artefacts do (`quantize qat
    --int8-float`), and its artefacts are that variant alone."""
    from featherface_mobile.checkpoint import load_model
    from featherface_mobile.export.pipeline import export_or_reuse
    from featherface_mobile.export.verify import verify
    from featherface_mobile.quant.qat import quantization_aware_training

    distilled = ", distillation only" if a.qat_distill_only else ""
    distilled += f", {'+'.join(train_float)} {TRAIN_FLOAT}" if train_float else ""
    how = f"QAT {a.qat_steps} steps{distilled}"
    out = a.work / (("qat-distill" if a.qat_distill_only else "qat") + "".join(f"-{g}" for g in train_float)) / name
    res = quantization_aware_training(weights, model=name, data=data, steps=a.qat_steps, size=a.size, lr=a.qat_lr,
                                      labels=not a.qat_distill_only, out=out, formats=tuple(formats),
                                      int8_float=train_float, log=lambda *_: None)
    tuned = ap_of(res.weights, data, a.size, images, model=name)  # the QAT float weights: what fine-tuning alone did
    rows = [{"model": name, "artefact": f"PyTorch float32 of the QAT weights{distilled} ({a.qat_steps} steps)", "ap": tuned,
             "delta_points": {s: round(100 * (tuned[s] - base[s]), 2) for s in SUBSETS}, "verify_f1": None, "kb": None}]
    print(rows[-1], flush=True)
    original = load_model(weights, name)
    arts = [(art.path, ref, train_float) for art, ref in zip(res.artefacts, res.reference_verify)]
    for fmt in formats:
        for groups in variants:
            opts = ExportOptions(size=a.size, int8=True, int8_ranges=res.ranges, int8_float=groups)
            path, _ = export_or_reuse(res.weights, name, fmt, opts, out)
            arts.append((path, verify(path, reference_model=original), groups))
    for path, ref, groups in arts:
        label = f"{path.suffix[1:]} INT8, {how} + learned ranges" + (f", {'+'.join(groups)} float" if groups else "")
        rows.append(delta_row(name, label, path, {"f1": ref.f1, "passed": ref.passed}, base, data, a.size, images))
        rows[-1]["qat_loss"] = [round(res.log.mean(True), 3), round(res.log.mean(False), 3)]
        rows[-1]["delta_vs_qat_float"] = {s: round(100 * (rows[-1]["ap"][s] - tuned[s]), 2) for s in SUBSETS}
        print(rows[-1], flush=True)
    return rows


def write_results(rows: list[dict], size: int, images: list[str]) -> None:
    """int8_accuracy.{json,md}; rows of the previous file that this run did not redo are kept."""
    RESULTS.mkdir(exist_ok=True)
    command = ("python benchmarks/int8_accuracy.py " + " ".join(sys.argv[1:])).strip()
    for r in rows:
        r["command"] = command
    previous = RESULTS / "int8_accuracy.json"
    if previous.is_file():  # rows not redone are kept (e.g. a slow model, or QAT, run on its own)
        old = json.loads(previous.read_text())
        if old.get("size") == size:
            done = {_key(r) for r in rows}
            retrained = {_qat_run(r) for r in rows} - {None}  # rows of an older QAT run had other weights
            rows = [r for r in old["rows"] if _key(r) not in done and "command" in r
                    and _qat_run(r) not in retrained] + rows
    order = MODELS.split(",")
    rows = sorted(rows, key=lambda r: (order.index(r["model"]) if r["model"] in order else len(order), _rank(r)))
    previous.write_text(json.dumps({"size": size, "images": len(images), "rows": rows}, indent=1))
    commands = sorted({r["command"] for r in rows})
    lines = [f"{' and '.join(f'`{c}`' for c in commands)}: eval split of wider_val_416 ({len(images)} images, none used "
             f"for calibration or QAT), input {size}x{size}; AP at IoU 0.5; delta = this row - the original float "
             "model, in AP points (targets: within 0.5 points calibrated, 0.2 after QAT); *vs QAT float* = a QAT "
             "artefact - the float model of its own QAT weights. Verify F1: faces at score 0.5 vs the original float "
             "model on 8 eval-split images (export gate 0.97).", "",
             "| model | artefact | KB | AP easy | AP medium | AP hard | delta easy / medium / hard | vs QAT float | verify F1 |",
             "|---|---|---:|---:|---:|---:|---|---|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['artefact']} | {r['kb'] or ''} | {r['ap']['easy']:.4f} | {r['ap']['medium']:.4f} | "
                     f"{r['ap']['hard']:.4f} | {format_deltas(r.get('delta_points'))} | {format_deltas(r.get('delta_vs_qat_float'))} | "
                     f"{r['verify_f1'] if r['verify_f1'] is not None else ''} |")
    (RESULTS / "int8_accuracy.md").write_text("\n".join(lines) + "\n")
    splice_readme("\n".join(lines))
    print("\n".join(lines))


def format_deltas(d: dict | None) -> str:
    """"-1.20 / +0.67 / -1.33" (easy / medium / hard), or "" without deltas."""
    return " / ".join(f"{d[s]:+.2f}" for s in SUBSETS) if d else ""


def splice_readme(table: str, readme: Path = RESULTS.parent.parent / "README.md", name: str = "int8_accuracy") -> None:
    """Put the table between README's `<!-- {name} table -->` markers."""
    start, end = f"<!-- {name} table -->\n", f"<!-- end {name} table -->"
    text = readme.read_text()
    if start in text and end in text:
        head, rest = text.split(start, 1)
        readme.write_text(head + start + table + "\n" + end + rest.split(end, 1)[1])


def _key(row: dict) -> tuple[str, str]:
    return row["model"], row["artefact"].split(" (")[0]


def _qat_run(row: dict) -> tuple[str, bool, str] | None:
    """(model, distillation only?, groups float in training) of a QAT row: its float model and artefacts
    come from one training run."""
    label = row["artefact"]
    if "QAT" not in label:
        return None
    trained_float = re.search(rf", (\S+) {TRAIN_FLOAT}", label)
    return row["model"], "distillation only" in label, trained_float.group(1) if trained_float else ""


def _rank(row: dict) -> int:
    """Table order within a model: float, calibrated, calibrated with float groups, then per QAT recipe
    (labels + distillation, distillation only) its float model and its artefacts."""
    label = row["artefact"]
    recipe = (2 if "distillation only" in label else 0) + (4 if TRAIN_FLOAT in label else 0)
    return (0 if label == "PyTorch float32" else 3 + recipe if label.startswith("PyTorch") else 4 + recipe
            if "QAT" in label else 2 if " float" in label else 1)


def parse_variants(text: str) -> list[tuple[str, ...]]:
    """"heads,stride4+heads" -> [("heads",), ("stride4", "heads")]."""
    return [tuple(v.split("+")) for v in text.split(",") if v]


def trained_models(names: str):
    """(name, checkpoint) of each comma-separated model that has trained weights here; the others are said and skipped."""
    for name in names.split(","):
        weights = resolve_weights_ref(get_spec(name).default_weights or "")
        if weights is None:
            print(f"{name}: no trained weights here, skipped", flush=True)
            continue
        yield name, weights


def main() -> None:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--formats", default="tflite,onnx", help="INT8 formats to export and evaluate")
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--qat-steps", type=int, default=0, help="also QAT this many steps and evaluate its artefacts")
    ap.add_argument("--qat-lr", type=float, default=2e-5)
    ap.add_argument("--qat-distill-only", action="store_true",
                    help="QAT on distillation from the float model alone (no multibox loss on the labels)")
    ap.add_argument("--qat-float-in-training", action="store_true",
                    help="one QAT run per --float-groups variant, with those ops float in training too "
                    "(`quantize qat --int8-float`), instead of one QAT run exported with every variant")
    ap.add_argument("--float-groups", default="", help="also export and evaluate calibrated INT8 with op groups kept "
                    "float: comma-separated variants, each a quant.float_ops group or groups joined by + "
                    "(e.g. heads,stride2,stride4+heads)")
    ap.add_argument("--work", type=Path, default=Path("runs/bench/exports"))
    a = ap.parse_args()
    data = require_wider_val()
    images = split_images("eval", data)
    formats = [f for f in a.formats.split(",") if f]
    variants = parse_variants(a.float_groups)
    rows = []
    for name, weights in trained_models(a.models):
        t0 = time.perf_counter()
        base = ap_of(weights, data, a.size, images)
        rows.append({"model": name, "artefact": "PyTorch float32", "ap": base, "verify_f1": None, "kb": None})
        print(rows[-1], flush=True)
        for fmt in formats:
            path, report = int8_artefact(weights, name, fmt, a.size, a.work)
            rows.append(delta_row(name, f"{fmt} INT8, calibrated", path, report, base, data, a.size, images))
            print(rows[-1], flush=True)
            for groups in variants:
                path, report = int8_artefact(weights, name, fmt, a.size, a.work, groups)
                rows.append(delta_row(name, f"{fmt} INT8, calibrated, {'+'.join(groups)} float", path, report, base,
                                      data, a.size, images))
                print(rows[-1], flush=True)
        if a.qat_steps and a.qat_float_in_training:
            for groups in variants:
                rows += qat_rows(weights, name, base, data, images, formats, [], a, train_float=groups)
        elif a.qat_steps:
            rows += qat_rows(weights, name, base, data, images, formats, variants, a)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
        write_results(rows, a.size, images)  # after each model: a failure later keeps what is done


if __name__ == "__main__":
    run_script(main)
