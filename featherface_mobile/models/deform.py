"""Modulated deformable convolution (DCNv2) in plain PyTorch, in two equal forms.

`sample_grid` uses `grid_sample` (fast, differentiable: training and eager inference);
`sample_gather` uses only floor, gather and arithmetic, which ONNX, TFLite and Core ML all run,
and is what export uses. Both reproduce torchvision's `deform_conv2d` semantics: offsets laid out
as (dy, dx) pairs per kernel tap, zero contribution from bilinear corners outside the image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _tap_positions(offset: torch.Tensor, kernel: int, stride: int, padding: int, dilation: int):
    """Absolute sampling coordinates (y, x), each (N, K, Ho, Wo), of every kernel tap."""
    n, _, ho, wo = offset.shape
    k = kernel * kernel
    dtype, device = offset.dtype, offset.device
    ky = (torch.arange(k, device=device) // kernel).to(dtype) * dilation
    kx = (torch.arange(k, device=device) % kernel).to(dtype) * dilation
    oy = torch.arange(ho, device=device, dtype=dtype) * stride - padding
    ox = torch.arange(wo, device=device, dtype=dtype) * stride - padding
    off = offset.reshape(n, k, 2, ho, wo)
    y = ky[:, None, None] + oy[None, :, None] + off[:, :, 0]
    x = kx[:, None, None] + ox[None, None, :] + off[:, :, 1]
    return y, x


def sample_grid(x: torch.Tensor, y: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (N, C, K, Ho, Wo) at (y, xs) with zero padding, via grid_sample."""
    n, c, h, w = x.shape
    _, k, ho, wo = y.shape
    gx = xs * (2.0 / max(w - 1, 1)) - 1.0
    gy = y * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).reshape(n, k * ho, wo, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(n, c, k, ho, wo)


def sample_gather(x: torch.Tensor, y: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (N, C, K, Ho, Wo) at (y, xs) with zero padding, via gathers only."""
    n, c, h, w = x.shape
    _, k, ho, wo = y.shape
    y0 = torch.floor(y)
    x0 = torch.floor(xs)
    ly, lx = y - y0, xs - x0
    rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    batch_base = (torch.arange(n, device=x.device) * (h * w)).reshape(n, 1, 1, 1)
    out = None
    for dy, wy in ((0.0, 1.0 - ly), (1.0, ly)):
        for dx, wx in ((0.0, 1.0 - lx), (1.0, lx)):
            yc, xc = y0 + dy, x0 + dx
            valid = (yc >= 0) & (yc <= h - 1) & (xc >= 0) & (xc <= w - 1)
            weight = wy * wx * valid.to(x.dtype)
            idx = (yc.clamp(0, h - 1) * w + xc.clamp(0, w - 1)).to(torch.int64) + batch_base
            vals = rows.index_select(0, idx.reshape(-1)).reshape(n, k, ho, wo, c)
            term = vals * weight[..., None]
            out = term if out is None else out + term
    return out.permute(0, 4, 1, 2, 3)


def modulated_deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int = 1,
    padding: int = 1,
    dilation: int = 1,
    portable: bool = False,
) -> torch.Tensor:
    """DCNv2: sum over taps of weight * mask * bilinear(x, position + offset)."""
    kernel = weight.shape[-1]
    y, xs = _tap_positions(offset, kernel, stride, padding, dilation)
    cols = (sample_gather if portable else sample_grid)(x, y, xs)  # (N, C, K, Ho, Wo)
    n, c, k, ho, wo = cols.shape
    cols = (cols * mask[:, None]).flatten(1, 2)
    # flatten/unsqueeze keep the kernel shape static for exporters (no traced size arithmetic).
    return F.conv2d(cols, weight.flatten(1)[:, :, None, None], bias)


class ModulatedDeformConv2d(nn.Module):
    """3x3 modulated deformable conv with its offset and modulator convs (FeatherFace V1 layout)."""

    def __init__(self, inp: int, oup: int, kernel_size: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        taps = kernel_size * kernel_size
        self.stride, self.padding = stride, padding
        self.portable = False
        self.offset_conv = nn.Conv2d(inp, 2 * taps, kernel_size, stride, padding, bias=True)
        self.modulator_conv = nn.Conv2d(inp, taps, kernel_size, stride, padding, bias=True)
        self.regular_conv = nn.Conv2d(inp, oup, kernel_size, stride, padding, bias=False)
        # Zero offsets and a modulator of 2*sigmoid(0) = 1 start as a plain conv.
        for conv in (self.offset_conv, self.modulator_conv):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.offset_conv(x)
        mask = 2.0 * torch.sigmoid(self.modulator_conv(x))
        return modulated_deform_conv2d(
            x, offset, mask, self.regular_conv.weight, self.regular_conv.bias,
            stride=self.stride, padding=self.padding, portable=self.portable,
        )


def set_portable_deform(model: nn.Module, portable: bool = True) -> nn.Module:
    """Switch every deformable conv of `model` to the gather form (for export) or back."""
    for m in model.modules():
        if isinstance(m, ModulatedDeformConv2d):
            m.portable = portable
    return model
