"""The distilled V2 / V2-Ultra against their teacher and RetinaFace, in one table.

Rows: featherface-v2 and featherface-v2-ultra (the checkpoints shipped in the package, or --v2 /
--v2-ultra), featherface-v1 (the 592K teacher) and retinaface-mnet025 (shared checkpoints).
Columns: parameters, float AP easy/medium/hard, and the INT8 TFLite artefact's AP, size and
verification F1; all on the eval split of wider_val_416 (never seen in training or calibration)
at one test scale. With --runs, also plots each training run's eval AP against its steps.

Usage: python benchmarks/v2_table.py [--size 640] [--work runs/bench/exports] [--runs runs/train]
(INT8 artefacts already in --work with their .verify.json are reused)
Writes benchmarks/results/v2_table.{md,json} and, with --runs, v2_training.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_accuracy import RESULTS, SUBSETS, ap_of, int8_artefact  # noqa: E402

from featherface_mobile.checkpoint import load_model  # noqa: E402
from featherface_mobile.models import get_spec  # noqa: E402
from featherface_mobile.errors import FeatherfaceError, run_script  # noqa: E402
from featherface_mobile.paths import require_wider_val, resolve_weights_ref  # noqa: E402
from featherface_mobile.splits import split_images  # noqa: E402

MODELS = ("featherface-v2", "featherface-v2-ultra", "featherface-v1", "retinaface-mnet025")
ROLE = {"featherface-v2": "student", "featherface-v2-ultra": "student", "featherface-v1": "teacher",
        "retinaface-mnet025": "baseline (backbone init)"}


def weights_of(name: str, overrides: dict[str, Path | None]) -> Path:
    path = overrides.get(name) or resolve_weights_ref(get_spec(name).default_weights or "")
    if path is None:
        raise FeatherfaceError(f"no weights for {name}: pass them on the command line or set FEATHERFACE_SHARED")
    return Path(path)


def plot_runs(runs: Path, out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    ckpts = sorted(runs.glob("*/last.pt"))
    if not ckpts:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in ckpts:
        state = torch.load(c, map_location="cpu", weights_only=True)["state"]
        losses = state["losses"]
        k = 50
        smooth = [sum(losses[max(0, i - k):i + 1]) / len(losses[max(0, i - k):i + 1]) for i in range(len(losses))]
        axes[0].plot(range(1, len(losses) + 1), smooth, label=c.parent.name)
        for s, style in zip(SUBSETS, ("-", "--", ":")):
            h = state["history"]
            axes[1].plot([e["step"] for e in h], [e["ap"][s] for e in h], style, label=f"{c.parent.name} {s}")
    axes[0].set(xlabel="step", ylabel="loss (50-step mean)", yscale="log", title="training loss")
    axes[1].set(xlabel="step", ylabel="AP (eval split, 416)", title="eval-split AP of the EMA weights")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


def main() -> None:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=640, help="test scale and INT8 export size")
    ap.add_argument("--work", type=Path, default=Path("runs/bench/exports"))
    ap.add_argument("--v2", type=Path, help="V2 checkpoint (default: the packaged one)")
    ap.add_argument("--v2-ultra", type=Path, help="V2-Ultra checkpoint (default: the packaged one)")
    ap.add_argument("--runs", type=Path, help="training run folders (each with last.pt) to plot")
    ap.add_argument("--no-int8", action="store_true", help="float rows only")
    a = ap.parse_args()
    data = require_wider_val()
    images = split_images("eval", data)
    overrides = {"featherface-v2": a.v2, "featherface-v2-ultra": a.v2_ultra}
    rows = []
    t0 = time.perf_counter()
    for name in MODELS:
        weights = weights_of(name, overrides)
        params = sum(p.numel() for p in load_model(weights, name).parameters())
        row = {"model": name, "role": ROLE[name], "weights": str(weights), "params": params,
               "float": ap_of(weights, data, a.size, images)}
        if not a.no_int8:
            path, report = int8_artefact(weights, name, "tflite", a.size, a.work)
            row["int8"] = ap_of(path, data, a.size, images) if path.is_file() else None
            row["int8_kb"] = round(path.stat().st_size / 1024) if path.is_file() else None
            row["int8_f1"] = report.get("f1")
            row["int8_passed"] = report.get("passed")
        rows.append(row)
        print(name, row["float"], row.get("int8"), flush=True)
    elapsed = time.perf_counter() - t0
    command = "python benchmarks/v2_table.py " + " ".join(sys.argv[1:])
    md = [f"Eval split of wider_val_416 ({len(images)} images, never seen in training), test scale {a.size}x{a.size}, "
          "AP at IoU 0.5 (featherface eval). INT8: full-integer TFLite calibrated on the train split, run by "
          f"ai-edge-litert. Command: `{command}` ({elapsed / 60:.0f} min).", "",
          "| model | role | params | float AP easy / medium / hard | INT8 TFLite AP easy / medium / hard | INT8 KB | INT8 verify F1 |",
          "|---|---|---:|---|---|---:|---:|"]
    for r in rows:
        f = " / ".join(f"{r['float'][s]:.3f}" for s in SUBSETS)
        i = " / ".join(f"{r['int8'][s]:.3f}" for s in SUBSETS) if r.get("int8") else "-"
        f1 = f"{r['int8_f1']:.3f}{'' if r.get('int8_passed') else ' (fails the 0.97 gate)'}" if r.get("int8_f1") is not None else "-"
        md.append(f"| {r['model']} | {r['role']} | {r['params']:,} | {f} | {i} | {r.get('int8_kb') or '-'} | {f1} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "v2_table.md").write_text("\n".join(md) + "\n")
    (RESULTS / "v2_table.json").write_text(json.dumps({"command": command, "size": a.size, "images": len(images),
                                                        "rows": rows}, indent=2))
    print("\n".join(md))
    if a.runs and (png := plot_runs(a.runs, RESULTS / "v2_training.png")):
        print(f"wrote {png}")


if __name__ == "__main__":
    run_script(main)
