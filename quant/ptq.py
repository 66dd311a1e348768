"""Post-training INT8 preparation: what every INT8 export runs on the float model before conversion."""
from __future__ import annotations

import torch
from torch import nn

from .bias_correction import correct_biases
from .equalize import int8_friendly


def prepare_for_int8(model: nn.Module, calibration: list[torch.Tensor], *, bias_correction: bool = True) -> nn.Module:
    """A copy of `model` whose weights and activations quantize better.

    BN folding and cross-layer/activation equalization preserve the float function exactly;
    bias correction then shifts conv biases by the mean error INT8 weight rounding adds (so the
    copy's float function moves by that much, on purpose). `calibration`: NCHW float batches
    preprocessed exactly as at run time.
    """
    out = int8_friendly(model, calibration)
    if bias_correction and calibration:
        out = correct_biases(out, calibration[:16], calibration=calibration)
    return out
