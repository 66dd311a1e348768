"""Post-training INT8 preparation: what every INT8 export runs on the float model before conversion."""
from __future__ import annotations

import torch
from torch import nn

from .equalize import int8_friendly


def prepare_for_int8(model: nn.Module, calibration: list[torch.Tensor]) -> nn.Module:
    """A function-preserving copy of `model` whose weights and activations quantize better.

    `calibration`: NCHW float batches preprocessed exactly as at run time.
    """
    return int8_friendly(model, calibration)
