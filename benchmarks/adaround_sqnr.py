"""What learned rounding changes before any conversion: per-conv output error and simulated INT8 SQNR.

For each model: BN folding + equalization on the export's calibration images (the train split, the
first 32 of them, as `featherface export --int8` uses them), then three weight variants of that
model run through the PyTorch simulation of TFLite full-integer INT8 (`quant/simulate.py`, min/max
ranges from the same calibration images): nearest rounding, nearest + bias correction (the export's
default) and AdaRound (`--int8-rounding adaround`). Reported: the SQNR of each output (loc, conf,
landms) against the float model on eval-split images, and AdaRound's per-conv output error against
nearest rounding on its own sampled rows.

Usage: python benchmarks/adaround_sqnr.py [--size 640] [--models retinaface-mnet025] [--images 8]
Writes benchmarks/results/adaround_sqnr.json.
"""
from __future__ import annotations

import argparse
import copy
import json
import time
import warnings

import numpy as np
import torch
from int8_accuracy import RESULTS, trained_models

from featherface_mobile.checkpoint import load_model
from featherface_mobile.errors import run_script
from featherface_mobile.export.common import model_inputs, sample_images
from featherface_mobile.quant import simulate
from featherface_mobile.quant.adaround import adaround, relative_gain
from featherface_mobile.quant.bias_correction import correct_biases
from featherface_mobile.quant.equalize import int8_friendly
from featherface_mobile.quant.report import sqnr_db

OUTPUTS = ("loc", "conf", "landms")


def pooled_sqnr_db(ref: list[torch.Tensor], got: list[torch.Tensor]) -> float:
    """`report.sqnr_db` over the outputs of all images at once."""
    return round(sqnr_db(np.concatenate([r.numpy().ravel() for r in ref]), np.concatenate([g.numpy().ravel() for g in got])), 2)


@torch.no_grad()
def simulated_sqnr(net, calib, images, ref) -> dict[str, float]:
    q = copy.deepcopy(net)
    simulate.calibrate(simulate.attach(q), calib)
    outs = [q(x) for x in images]
    return {k: pooled_sqnr_db([r[i] for r in ref], [o[i] for o in outs]) for i, k in enumerate(OUTPUTS)}


def model_row(name: str, weights, size: int, count: int) -> dict:
    net = load_model(weights, model=name).eval()
    calib = [torch.from_numpy(b) for b in model_inputs(sample_images(32, split="train"), size, net.config.mean_bgr)]
    images = [torch.from_numpy(b) for b in model_inputs(sample_images(count, split="eval"), size, net.config.mean_bgr)]
    prepared = int8_friendly(net, calib)
    t0 = time.perf_counter()
    rounded, per_conv = adaround(prepared, calib[:16])
    seconds = time.perf_counter() - t0
    variants = {"nearest": prepared, "nearest + bias correction": correct_biases(prepared, calib[:16], calibration=calib),
                "adaround": rounded}
    with torch.no_grad():
        ref = [prepared(x) for x in images]
    row = {"model": name, "size": size, "eval_images": count, "adaround_seconds": round(seconds),
           "convs": len(per_conv), "conv_error_ratio_geomean": round(relative_gain(per_conv), 4),
           "conv_error_ratio_range": [round(min(r["adaround"] / r["nearest"] for r in per_conv.values()), 4),
                                      round(max(r["adaround"] / r["nearest"] for r in per_conv.values()), 4)],
           "simulated_sqnr_db": {label: simulated_sqnr(m, calib[:16], images, ref) for label, m in variants.items()}}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--models", default="retinaface-mnet025")
    ap.add_argument("--images", type=int, default=8, help="eval-split images the SQNR is measured on")
    a = ap.parse_args()
    torch.set_num_threads(2)
    rows = [model_row(name, weights, a.size, a.images) for name, weights in trained_models(a.models)]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "adaround_sqnr.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    run_script(main)
