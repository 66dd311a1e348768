"""Post-training INT8 preparation: what every INT8 export runs on the float model before conversion."""
from __future__ import annotations

import torch
from torch import nn

from featherface_mobile.checkpoint import carry_model_attrs

from .bias_correction import correct_biases
from .equalize import int8_friendly

# How INT8 weights are rounded (`--int8-rounding`).
ROUNDINGS = {
    "nearest": "the converter's nearest rounding, conv biases corrected for its mean error",
    "adaround": "rounding learned conv by conv on the calibration images (quant/adaround.py; minutes)",
}


def prepare_for_int8(model: nn.Module, calibration: list[torch.Tensor], *, bias_correction: bool = True,
                     rounding: str = "nearest", float_groups: tuple[str, ...] = ()) -> nn.Module:
    """A copy of `model` whose weights and activations quantize better.

    BN folding and cross-layer/activation equalization preserve the float function exactly;
    bias correction then shifts conv biases by the mean error INT8 weight rounding adds (so the
    copy's float function moves by that much, on purpose). `rounding="adaround"` instead puts the
    conv weights (except those of `float_groups`) on the INT8 grid with learned rounding.
    `calibration`: NCHW float batches preprocessed exactly as at run time.
    """
    out = int8_friendly(model, calibration)
    if rounding == "adaround" and calibration:
        from .adaround import adaround

        return adaround(out, calibration[:16], float_groups=float_groups)[0]
    if bias_correction and calibration:
        out = correct_biases(out, calibration[:16], calibration=calibration)
    return out


def int8_source(model: nn.Module, calibration: list[torch.Tensor], ranges=None, size: int | None = None, *,
                rounding: str = "nearest", float_groups: tuple[str, ...] = ()):
    """(model to convert, learned ranges or None) for an INT8 export.

    Without `ranges`: `prepare_for_int8`. With a QAT ranges file: the QAT-trained model as it is
    (BN folded only: QAT trained the prepared model, and re-equalizing would move its tensors away
    from the ranges learned for them) and the ranges, which must have been learned at `size`.
    """
    if ranges is None:
        return prepare_for_int8(model, calibration, rounding=rounding, float_groups=float_groups), None
    from .equalize import fold_batchnorm
    from .learned import load_for_size

    learned = load_for_size(ranges, size)
    out = fold_batchnorm(model)
    carry_model_attrs(out, model)
    return out, learned
