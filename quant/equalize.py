"""Make a float model friendlier to INT8 without changing its function.

1. `fold_batchnorm`: fuse every BatchNorm that follows a conv into that conv (exact in eval mode).
2. `equalize_chains`: cross-layer equalization (Nagel et al., "Data-Free Quantization", 2019) along
   conv -> (Leaky)ReLU -> conv chains. Channel c of the first conv is divided by s_c and the
   matching input channel of the next conv multiplied by s_c; (Leaky)ReLU commutes with a positive
   scale, so outputs are unchanged, while the per-channel ranges that share one INT8 activation
   scale become alike. Scales come from the weights (data-free) and, when calibration activations
   are given, from the activations too.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from featherface_mobile.checkpoint import carry_model_attrs
from featherface_mobile.models.deform import ModulatedDeformConv2d
from featherface_mobile.models.layers import MobileNetV1x025


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    std = torch.sqrt(bn.running_var + bn.eps)
    scale = bn.weight / std
    conv.weight.data = conv.weight.data * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
    bias = conv.bias.data if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


def _conv_of(module: nn.Module) -> nn.Conv2d | None:
    if isinstance(module, nn.Conv2d):
        return module
    if isinstance(module, ModulatedDeformConv2d):
        return module.regular_conv
    for attr in ("pointwise_conv", "conv"):  # SeparableConvBlock ends in its pointwise conv; SamePadConv wraps one
        inner = getattr(module, attr, None)
        if inner is not None:
            return _conv_of(inner)
    return None


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` (eval) with every conv -> BatchNorm pair fused; BNs become Identity."""
    model = copy.deepcopy(model).eval()
    for parent in model.modules():
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = _conv_of(parent._modules[a]), parent._modules[b]
            if conv is not None and isinstance(bn, nn.BatchNorm2d):
                _fold(conv, bn)
                parent._modules[b] = nn.Identity()
        if hasattr(parent, "bn") and isinstance(parent.bn, nn.BatchNorm2d):
            conv = _conv_of(getattr(parent, "pointwise_conv", None) or getattr(parent, "conv", None))
            if conv is not None:
                _fold(conv, parent.bn)
                parent.bn = nn.Identity()
    return model


def _backbone_chains(body: MobileNetV1x025) -> list[list[nn.Conv2d]]:
    """Conv chains inside each backbone stage (stage outputs feed the neck, so chains stop there)."""
    chains = []
    for stage in (body.stage1, body.stage2, body.stage3):
        chain = []
        for block in stage:
            chain += [m for m in block if isinstance(m, nn.Conv2d)]
        chains.append(chain)
    return chains


def _out_range(conv: nn.Conv2d) -> torch.Tensor:
    return conv.weight.abs().flatten(1).amax(1)


def _in_range(conv: nn.Conv2d) -> torch.Tensor:
    if conv.groups == conv.in_channels == conv.out_channels:  # depthwise: input c -> output c
        return conv.weight.abs().flatten(1).amax(1)
    return conv.weight.abs().transpose(0, 1).flatten(1).amax(1)


def _scale_pair(c1: nn.Conv2d, c2: nn.Conv2d, s: torch.Tensor) -> None:
    c1.weight.data /= s.reshape(-1, *([1] * (c1.weight.dim() - 1)))
    if c1.bias is not None:
        c1.bias.data /= s
    if c2.groups == c2.in_channels == c2.out_channels:
        c2.weight.data *= s.reshape(-1, 1, 1, 1)
    else:
        c2.weight.data *= s.reshape(1, -1, 1, 1)


@torch.no_grad()
def equalize_chains(model: nn.Module, iterations: int = 4) -> nn.Module:
    """Cross-layer equalization of the backbone's conv chains (model must be BN-folded)."""
    body = getattr(model, "body", None)
    if not isinstance(body, MobileNetV1x025):
        return model
    for _ in range(iterations):
        for chain in _backbone_chains(body):
            for c1, c2 in zip(chain, chain[1:]):
                r1, r2 = _out_range(c1), _in_range(c2)
                s = torch.sqrt(r1 / r2.clamp(min=1e-8)).clamp(1e-3, 1e3)
                _scale_pair(c1, c2, s)
    return model


def _is_depthwise(conv: nn.Conv2d) -> bool:
    return conv.groups == conv.in_channels == conv.out_channels


@torch.no_grad()
def equalize_activations(model: nn.Module, batches: list[torch.Tensor], *, depthwise_only: bool = True,
                         alpha: float = 0.5) -> nn.Module:
    """Give every channel feeding a depthwise conv the same activation range.

    Both sides are quantized per channel (the producer per output channel, the depthwise conv per
    channel), so this rescaling costs the weights nothing while the shared per-tensor activation
    scale stops crushing small channels. `alpha` is the strength (0.5: the geometric middle);
    `depthwise_only=False` also equalizes pointwise consumers, paying with their weight precision
    (measured on RetinaFace, simulated INT8 at 640: no better than the default).
    """
    body = getattr(model, "body", None)
    if not isinstance(body, MobileNetV1x025) or not batches:
        return model
    pairs = [(c1, c2) for chain in _backbone_chains(body) for c1, c2 in zip(chain, chain[1:])
             if _is_depthwise(c2) or not depthwise_only]
    ranges: dict[int, torch.Tensor] = {}

    def hook(i):
        def fn(module, args):
            r = args[0].abs().amax(dim=(0, 2, 3))
            ranges[i] = torch.maximum(ranges[i], r) if i in ranges else r
        return fn

    handles = [c2.register_forward_pre_hook(hook(i)) for i, (_, c2) in enumerate(pairs)]
    for b in batches:
        model(b)
    for h in handles:
        h.remove()
    for i, (c1, c2) in enumerate(pairs):
        r = ranges[i]
        s = (r / r.max()).pow(alpha).clamp(min=1e-2)
        _scale_pair(c1, c2, s)
    return model


def int8_friendly(model: nn.Module, batches: list[torch.Tensor] | None = None) -> nn.Module:
    """BN folding + cross-layer equalization (+ activation equalization with calibration batches).

    The result computes the same function as `model`.
    """
    out = equalize_activations(equalize_chains(fold_batchnorm(model)), batches or [])
    carry_model_attrs(out, model)
    return out
