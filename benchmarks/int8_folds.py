"""INT8 accuracy with every wider_val_416 image held out once: 3-fold cross-validated calibration.

One 41-image eval split is a few hundred faces, so one face that crosses a score moves easy AP by
~0.8 points; `int8_accuracy.py` cannot tell a 0.5-point target from noise. Here fold k holds out
the sorted names k, k+3, ... (fold 0 is splits.json's eval split), each INT8 artefact is calibrated
(`featherface export --int8 --calib DIR`) on the other 82 images and detects only on its 41 held-out
ones, and the detections of the 3 folds are pooled into one AP over all 123 images, against the
float model's AP on the same 123. Per-fold deltas show how far one split alone can wander.

With --qat-steps N, each fold also runs `featherface quantize qat` for N steps on its 82 images (multibox
loss on their labels + distillation; the 41 held-out images are never trained on), then exports the QAT
weights with their learned ranges (full integer and each --float-groups variant) and detects with them on
the held-out images; rows give the delta against the original float model and against the float model of
the fold's own QAT weights ("vs QAT float").

Usage: python benchmarks/int8_folds.py [--size 640] [--models retinaface-mnet025,featherface-v1]
       [--float-groups backbone8,backbone8+deform] [--no-full] [--qat-steps 300 [--qat-only]] [--work runs/folds]
(artefacts already in --work/fold<k> or --work/qat<N>-fold<k>, with their .verify.json, and QAT weights
already there, are reused)
Writes benchmarks/results/int8_folds.{json,md,png} (bars: pooled deltas; dots: the folds) and the table in README.md (between its markers).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path

from int8_accuracy import RESULTS, format_deltas, parse_variants, splice_readme, trained_models

from featherface_mobile.errors import run_script
from featherface_mobile.evaluate import SUBSETS, load_ground_truth, predict, score
from featherface_mobile.export import ExportOptions
from featherface_mobile.paths import require_wider_val
from featherface_mobile.runtime import load_runner
from featherface_mobile.splits import split_images

FOLDS = 3


def folds(names: list[str], data: Path) -> list[list[str]]:
    """The held-out names of each fold; fold 0 must be the eval split every other benchmark uses."""
    names = sorted(names)
    held = [names[k::FOLDS] for k in range(FOLDS)]
    assert held[0] == split_images("eval", data), "splits.json's eval split is no longer names[::3]"
    return held


def calibration_dir(work: Path, data: Path, held_out: list[str], k: int) -> Path:
    """A folder of links to the images fold k calibrates on (every image it does not hold out)."""
    out = work / f"calib-fold{k}"
    out.mkdir(parents=True, exist_ok=True)
    for p in sorted((data / "images").iterdir()):
        link = out / p.name
        if p.name not in held_out and not link.exists():
            link.symlink_to(p.resolve())
    return out


def pooled(preds: list[dict]) -> dict:
    return {n: p for fold in preds for n, p in fold.items()}


def pooled_row(name: str, label: str, preds: list[dict], gts: dict, base: dict, base_folds: list[dict],
               held: list[list[str]], extra: dict) -> dict:
    ap = score(pooled(preds), gts)[0]
    per_fold = [score(p, {n: gts[n] for n in names})[0] for p, names in zip(preds, held)]
    row = {"model": name, "artefact": label, "ap": ap,
           "delta_points": {s: round(100 * (ap[s] - base[s]), 2) for s in SUBSETS},
           "fold_delta_points": [{s: round(100 * (f[s] - b[s]), 2) for s in SUBSETS} for f, b in zip(per_fold, base_folds)],
           **extra}
    print(row, flush=True)
    return row


def model_rows(name: str, weights: Path, variants: list[tuple[str, ...]], a, data: Path) -> list[dict]:
    from featherface_mobile.export.pipeline import export_or_reuse

    gts = load_ground_truth(data)
    held = folds(list(gts), data)
    float_preds, _ = predict(load_runner(weights), data, sorted(gts), size=a.size)
    base, _ = score(float_preds, gts)
    base_folds = [score({n: float_preds[n] for n in names}, {n: gts[n] for n in names})[0] for names in held]
    rows = [{"model": name, "artefact": "PyTorch float32", "ap": base, "folds": FOLDS, "images": len(gts)}]
    print(rows[-1], flush=True)
    for groups in ([] if a.qat_only else variants):
        preds, f1s = [], []
        for k, names in enumerate(held):
            opts = ExportOptions(size=a.size, int8=True, int8_float=groups, int8_rounding=a.rounding,
                                 calib=calibration_dir(a.work, data, names, k))
            path, report = export_or_reuse(weights, name, "tflite", opts, a.work / f"fold{k}")
            preds.append(predict(load_runner(path), data, names, size=a.size)[0])
            f1s.append(round(report["f1"], 3) if report else None)
        label = ("tflite INT8, calibrated" + (", AdaRound" if a.rounding == "adaround" else "")
                 + (f", {'+'.join(groups)} float" if groups else ""))
        rows.append(pooled_row(name, label, preds, gts, base, base_folds, held,
                               {"verify_f1": f1s, "rounding": a.rounding, "float_groups": list(groups)}))
    if a.qat_steps:
        rows += qat_rows(name, weights, variants, a, data, gts, held, base, base_folds)
    return rows


def qat_rows(name: str, weights: Path, variants: list[tuple[str, ...]], a, data: Path, gts: dict,
             held: list[list[str]], base: dict, base_folds: list[dict]) -> list[dict]:
    """Per fold: QAT on the 82 images it does not hold out, then the QAT weights' float model and their
    INT8 artefacts (learned ranges; tensors QAT did not observe calibrated on the same 82) on the other 41."""
    from featherface_mobile.export.pipeline import export_or_reuse
    from featherface_mobile.quant.qat import quantization_aware_training

    tuned, arts, f1s = [], {g: [] for g in variants}, {g: [] for g in variants}
    for k, names in enumerate(held):
        calib = calibration_dir(a.work, data, names, k)
        out = a.work / f"qat{a.qat_steps}-fold{k}" / name
        wpath, rpath = out / f"{name}_qat.pth", out / f"{name}_qat.ranges.npz"
        if not (wpath.is_file() and rpath.is_file()):
            t0 = time.perf_counter()
            quantization_aware_training(weights, model=name, data=data, steps=a.qat_steps, size=a.size, lr=a.qat_lr,
                                        out=out, formats=(), images=sorted(set(gts) - set(names)), calib=calib,
                                        log=lambda *_: None)
            print(f"{name} fold {k}: QAT {a.qat_steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
        tuned.append(predict(load_runner(wpath, model=name), data, names, size=a.size)[0])
        for groups in variants:
            opts = ExportOptions(size=a.size, int8=True, int8_ranges=rpath, int8_float=groups, calib=calib)
            path, report = export_or_reuse(wpath, name, "tflite", opts, out)
            arts[groups].append(predict(load_runner(path), data, names, size=a.size)[0])
            f1s[groups].append(round(report["f1"], 3) if report else None)
    how = f"QAT {a.qat_steps} steps"
    rows = [pooled_row(name, f"PyTorch float32 of the QAT weights ({a.qat_steps} steps)", tuned, gts, base, base_folds, held, {})]
    tuned_ap = rows[0]["ap"]
    for groups in variants:
        label = f"tflite INT8, {how} + learned ranges" + (f", {'+'.join(groups)} float" if groups else "")
        row = pooled_row(name, label, arts[groups], gts, base, base_folds, held, {"verify_f1_vs_qat_float": f1s[groups]})
        row["delta_vs_qat_float"] = {s: round(100 * (row["ap"][s] - tuned_ap[s]), 2) for s in SUBSETS}
        rows.append(row)
    return rows


def write_results(rows: list[dict], size: int) -> None:
    """int8_folds.{json,md}; rows of the previous file that this run did not redo are kept."""
    RESULTS.mkdir(exist_ok=True)
    command = ("python benchmarks/int8_folds.py " + " ".join(sys.argv[1:])).strip()
    for r in rows:
        r["command"] = command
    previous = RESULTS / "int8_folds.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        if old.get("size") == size:
            done = {(r["model"], r["artefact"]) for r in rows}
            rows = [r for r in old["rows"] if (r["model"], r["artefact"]) not in done] + rows
    rows = sorted(rows, key=lambda r: (r["model"], r["artefact"] != "PyTorch float32", r["artefact"]))
    previous.write_text(json.dumps({"size": size, "folds": FOLDS, "rows": rows}, indent=1))
    commands = sorted({r["command"] for r in rows})
    lines = [f"{' and '.join(f'`{c}`' for c in commands)}: all 123 images of wider_val_416, each detected by an "
             f"artefact calibrated without it ({FOLDS} folds of 41 held-out images, 82 calibration images each; fold 0 "
             f"= the eval split above), input {size}x{size}, AP at IoU 0.5 over the pooled detections; delta = INT8 - "
             "float on the same images, in AP points (target: within 0.5); per fold = the same delta on each fold's 41 "
             "images alone; QAT rows: each fold's QAT trained on its 82 images only, *vs QAT float* = the QAT "
             "artefact - the float model of the same folds' QAT weights.", "",
             "| model | artefact | AP easy | AP medium | AP hard | delta easy / medium / hard (123 images) | "
             "vs QAT float | per fold: easy | per fold: medium | per fold: hard |",
             "|---|---|---:|---:|---:|---|---|---|---|---|"]
    for r in rows:
        fold = r.get("fold_delta_points")
        per = [", ".join(f"{f[s]:+.2f}" for f in fold) if fold else "" for s in SUBSETS]
        lines.append(f"| {r['model']} | {r['artefact']} | {r['ap']['easy']:.4f} | {r['ap']['medium']:.4f} | "
                     f"{r['ap']['hard']:.4f} | {format_deltas(r.get('delta_points'))} | "
                     f"{format_deltas(r.get('delta_vs_qat_float'))} | {' | '.join(per)} |")
    (RESULTS / "int8_folds.md").write_text("\n".join(lines) + "\n")
    plot(rows, RESULTS / "int8_folds.png")
    splice_readme("\n".join(lines), name="int8_folds")
    print("\n".join(lines))


def short_label(artefact: str) -> str:
    """'tflite INT8, QAT 300 steps + learned ranges, stride4 float' -> 'QAT300 INT8 stride4'."""
    qat = re.search(r"QAT (\d+) steps", artefact) or re.search(r"\((\d+) steps\)", artefact)
    head = f"QAT{qat.group(1)} " if qat else "AdaRound " if "AdaRound" in artefact else ""
    kind = "float" if artefact.startswith("PyTorch") else "INT8"
    group = re.search(r", (\S+) float$", artefact)
    return head + kind + (f" {group.group(1)}" if group else "")


def plot(rows: list[dict], path: Path) -> None:
    """Per model and subset: the pooled delta of each variant (bar) and its three folds (dots), the 0.5 target shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_model: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("fold_delta_points"):
            by_model.setdefault(r["model"], []).append(r)
    models = sorted(by_model)
    width = max(4, 0.6 * max(len(v) for v in by_model.values()))
    fig, axes = plt.subplots(len(models), len(SUBSETS), figsize=(width * len(SUBSETS), 3.6 * len(models)), squeeze=False)
    for ax_row, model in zip(axes, models):
        variants = by_model[model]
        labels = [short_label(r["artefact"]) for r in variants]
        colors = ["tab:orange" if "QAT" in r["artefact"] else "tab:purple" if "AdaRound" in r["artefact"] else "tab:blue"
                  for r in variants]
        for ax, s in zip(ax_row, SUBSETS):
            ax.axhspan(-0.5, 0.5, color="tab:green", alpha=0.15)
            ax.bar(range(len(variants)), [r["delta_points"][s] for r in variants], color=colors, alpha=0.7)
            for i, r in enumerate(variants):
                ax.plot([i] * FOLDS, [f[s] for f in r["fold_delta_points"]], "k.", markersize=6)
            ax.axhline(0, color="k", linewidth=0.8)
            ax.set_xticks(range(len(variants)), labels, fontsize=7, rotation=45, ha="right")
            ax.set_title(f"{model}: {s}", fontsize=10)
            ax.set_ylabel("AP points vs float")
            ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--models", default="retinaface-mnet025,featherface-v1")
    ap.add_argument("--float-groups", default="", help="besides full integer, variants with op groups kept float: "
                    "comma-separated, each a quant.float_ops group or groups joined by + (e.g. backbone8,backbone8+deform)")
    ap.add_argument("--no-full", action="store_true", help="skip the full-integer variant")
    ap.add_argument("--qat-steps", type=int, default=0, help="also QAT each fold this many steps and evaluate its artefacts")
    ap.add_argument("--qat-lr", type=float, default=2e-5)
    ap.add_argument("--qat-only", action="store_true", help="only the QAT rows (the calibrated ones are not redone)")
    ap.add_argument("--rounding", choices=["nearest", "adaround"], default="nearest",
                    help="INT8 weight rounding of the calibrated variants (`export --int8-rounding`)")
    ap.add_argument("--work", type=Path, default=Path("runs/folds"))
    a = ap.parse_args()
    data = require_wider_val()
    variants = ([] if a.no_full else [()]) + parse_variants(a.float_groups)
    rows = []
    for name, weights in trained_models(a.models):
        t0 = time.perf_counter()
        rows += model_rows(name, weights, variants, a, data)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
        write_results(rows, a.size)


if __name__ == "__main__":
    run_script(main)
