"""Bias correction (Nagel et al. 2019, sec. 4.2) against simulated TFLite INT8.

Rounding a conv's weights to INT8 shifts the mean of its output: E[(W_q - W) x] per output
channel. The shift is measured on calibration images, with the conv's input as INT8 delivers it,
and subtracted from the bias. Each conv's own shift is measured (its float weights applied to
the same input), so corrections do not compound along the network.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from featherface_mobile.checkpoint import carry_model_attrs

from . import simulate


def weight_rounding_shifts(sim: simulate.Simulation, batches: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per conv of a calibrated simulation: mean per-channel output shift caused by its INT8 weights."""
    sums: dict[str, torch.Tensor] = {}
    handles = []
    for name, m in sim.model.named_modules():
        if isinstance(m, nn.Conv2d) and hasattr(m, "parametrizations"):
            def hook(mod, args, out, name=name):
                ref = F.conv2d(args[0], mod.parametrizations.weight.original, mod.bias, mod.stride, mod.padding,
                               mod.dilation, mod.groups)
                sums[name] = sums.get(name, 0) + (out - ref).double().mean(dim=(0, 2, 3))
            handles.append(m.register_forward_hook(hook, prepend=True))
    with torch.no_grad():
        for b in batches:
            sim.model(b)
    for h in handles:
        h.remove()
    return {k: (v / len(batches)).float() for k, v in sums.items()}


@torch.no_grad()
def correct_biases(model: nn.Module, batches: list[torch.Tensor], *, calibration: list[torch.Tensor] | None = None) -> nn.Module:
    """A copy of `model` (BN-folded) whose conv biases cancel the mean INT8 weight-rounding error."""
    out = copy.deepcopy(model)
    carry_model_attrs(out, model)
    sim = simulate.calibrate(simulate.attach(out), calibration or batches)
    shifts = weight_rounding_shifts(sim, batches)
    sim.detach()
    convs = dict(out.named_modules())
    for name, shift in shifts.items():
        conv = convs[name]
        if conv.bias is None:
            conv.bias = nn.Parameter(torch.zeros(conv.out_channels))
        conv.bias.data -= shift
    return out

