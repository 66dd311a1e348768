"""Does a TFLite artefact exported with `--int8-rounding adaround` carry exactly AdaRound's rounding?

Re-runs the export's preparation (BN folding and equalization on the first 32 images of the default
calibration, the train split; AdaRound on 16 of them) and compares every per-channel INT8 conv weight
tensor of the artefact with the prepared model's weights divided by their per-channel scale (tensors
paired by their scales).

Usage: python benchmarks/adaround_grid_check.py MODEL ARTEFACT.tflite [FLOAT_GROUPS]
(ARTEFACT exported at 640 with the default calibration, e.g. `featherface export --model retinaface-mnet025
--format tflite --int8 --int8-float stride4 --int8-rounding adaround`)
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from featherface_mobile.checkpoint import load_model
from featherface_mobile.errors import run_script
from featherface_mobile.export import ExportOptions
from featherface_mobile.export.tflite_format import calibration_batches
from featherface_mobile.quant.ptq import prepare_for_int8


def grid_weights(name: str, groups: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(integer weights, per-channel scales) of every conv of the prepared model."""
    net = load_model(None, model=name).eval()
    calib = calibration_batches(net, ExportOptions(size=640, int8=True))
    batches = [torch.from_numpy(x.transpose(2, 0, 1)[None].copy()) for x in calib[:32]]
    prepared = prepare_for_int8(net, batches, rounding="adaround", float_groups=groups)
    out = []
    for conv in prepared.modules():
        if isinstance(conv, torch.nn.Conv2d):
            w = conv.weight.detach().numpy().astype(np.float32)
            scale = np.abs(w.reshape(len(w), -1)).max(1) / 127
            out.append((np.round(w / scale.reshape(-1, 1, 1, 1)), scale))
    return out


def main() -> None:
    from ai_edge_litert.interpreter import Interpreter

    name, artefact = sys.argv[1], sys.argv[2]
    groups = tuple(sys.argv[3].split(",")) if len(sys.argv) > 3 else ()
    torch.set_num_threads(2)
    convs = grid_weights(name, groups)
    it = Interpreter(model_path=artefact)
    it.allocate_tensors()
    total = matched = identical = differing = values = 0
    for d in it.get_tensor_details():
        scales = d["quantization_parameters"]["scales"]
        if d["dtype"] != np.int8 or len(scales) <= 1 or len(d["shape"]) != 4:
            continue
        try:
            q = it.get_tensor(d["index"])
        except ValueError:
            continue
        total += 1
        for n, scale in convs:
            if len(scale) == len(scales) and np.allclose(scale, scales, rtol=1e-5):
                # TFLite conv weights are (O, kh, kw, I), depthwise (1, kh, kw, O)
                tq = q.transpose(0, 3, 1, 2) if q.shape[0] == len(scales) else q.transpose(3, 0, 1, 2)
                if tq.shape == n.shape:
                    matched += 1
                    differing += int((tq != n).sum())
                    values += tq.size
                    identical += int((tq == n).all())
                break
    print(f"per-channel int8 weight tensors {total}, matched to a torch conv by scale {matched}, identical {identical}, "
          f"differing values {differing} of {values}")


if __name__ == "__main__":
    run_script(main)
