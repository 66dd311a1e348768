"""Simulate TFLite full-integer INT8 inside a PyTorch model, so its weights can be tuned against it.

TFLite's INT8 scheme: weights symmetric per output channel in [-127, 127]; every activation
tensor asymmetric per tensor in [-128, 127], its range the min/max seen on calibration images.
`attach` puts fake-quant on conv weights (a parametrization, so the float weights stay the
trainable parameters) and on the activations TFLite quantizes (the model input, every conv
input and output, every activation module's output). Straight-through gradients.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.Sigmoid, nn.SiLU)


class WeightFakeQuant(nn.Module):
    """Per-output-channel symmetric INT8 fake quantization (TFLite's conv/depthwise weights)."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale = (w.detach().abs().flatten(1).amax(1) / 127.0).clamp(min=1e-12)
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


@dataclass
class ActivationRange:
    """Running min/max of one tensor; `frozen` stops updating (the range TFLite would calibrate)."""

    lo: float = float("inf")
    hi: float = float("-inf")
    frozen: bool = False

    def observe(self, x: torch.Tensor) -> None:
        if not self.frozen:
            self.lo = min(self.lo, float(x.detach().min()))
            self.hi = max(self.hi, float(x.detach().max()))

    def fake_quant(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)  # TFLite nudges the range to contain 0
        scale = max((hi - lo) / 255.0, 1e-8)
        zero = int(round(-128 - lo / scale))
        return torch.fake_quantize_per_tensor_affine(x, scale, max(-128, min(127, zero)), -128, 127)


@dataclass
class Simulation:
    """Handles of an attached simulation: activation ranges by name, and a switch for each part."""

    model: nn.Module
    ranges: dict[str, ActivationRange] = field(default_factory=dict)
    handles: list = field(default_factory=list)
    quantize: bool = False  # False: observe ranges only (calibration pass)

    def freeze(self) -> None:
        for r in self.ranges.values():
            r.frozen = True

    def reset_ranges(self) -> None:
        for r in self.ranges.values():
            r.lo, r.hi, r.frozen = float("inf"), float("-inf"), False

    def detach(self) -> nn.Module:
        """Remove every hook and fake-quant; the float weights (as tuned) stay in the model."""
        for h in self.handles:
            h.remove()
        for m in self.model.modules():
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
        return self.model

    def _point(self, name: str):
        rng = self.ranges.setdefault(name, ActivationRange())

        def apply(x: torch.Tensor) -> torch.Tensor:
            if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                return x
            rng.observe(x)
            return rng.fake_quant(x) if self.quantize else x
        return apply


def attach(model: nn.Module) -> Simulation:
    """Attach INT8 simulation to `model` in place (call `calibrate` before quantizing)."""
    sim = Simulation(model)
    q_in = sim._point("input")
    sim.handles.append(model.register_forward_pre_hook(lambda m, args: (q_in(args[0]),) + tuple(args[1:])))
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            parametrize.register_parametrization(m, "weight", WeightFakeQuant())
            q_i, q_o = sim._point(name + ":in"), sim._point(name)
            sim.handles.append(m.register_forward_pre_hook(lambda mod, args, q=q_i: (q(args[0]),)))
            sim.handles.append(m.register_forward_hook(lambda mod, args, out, q=q_o: q(out)))
        elif isinstance(m, _ACTIVATIONS):
            q_o = sim._point(name)
            sim.handles.append(m.register_forward_hook(lambda mod, args, out, q=q_o: q(out)))
    q_out = {k: sim._point(f"output:{k}") for k in ("loc", "conf", "landms")}
    sim.handles.append(model.register_forward_hook(
        lambda m, args, out: tuple(q_out[k](o) for k, o in zip(("loc", "conf", "landms"), out))))
    return sim


@torch.no_grad()
def calibrate(sim: Simulation, batches: list[torch.Tensor]) -> Simulation:
    """Observe every activation's min/max on `batches` (float pass), freeze, and switch quantization on."""
    sim.reset_ranges()
    sim.quantize = False
    for b in batches:
        sim.model(b)
    sim.freeze()
    sim.quantize = True
    return sim
