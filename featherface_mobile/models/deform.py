"""Modulated deformable convolution (DCNv2) in plain PyTorch, in two equal forms.

`sample_grid` uses `grid_sample` (fast, differentiable: training and eager inference); the
portable form (`portable=True`) uses only floor, integer index arithmetic, one gather and a 1x1
convolution on 2-D tensors, which ONNX, TFLite and Core ML all run, and is what export and
verification use. Both reproduce torchvision's `deform_conv2d` semantics: offsets laid out as
(dy, dx) pairs per kernel tap, zero contribution from bilinear corners outside the image.
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


def _deform_gather_one(
    x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
    stride: int, padding: int, dilation: int,
) -> torch.Tensor:
    """One image: gather rows of an (H*W, C) table, then a 1x1 convolution.

    Keeping the sampling 2-D (taps x positions, channels) leaves converters that change the
    layout (onnx2tf: NCHW -> NHWC) nothing ambiguous to transpose. The sampling position is split
    into the integer grid (a constant) plus the offset: floor and fraction come from the small
    offset alone and the indices are integer arithmetic, so INT8 converters never put the large
    coordinates (up to the image size) on a quantization grid.
    """
    _, c, h, w = x.shape
    _, _, ho, wo = offset.shape
    o, _, kh, kw = weight.shape
    k, p = kh * kw, ho * wo
    table = x[0].reshape(c, h * w).transpose(0, 1)  # (H*W, C)
    device = x.device
    taps = torch.arange(k, device=device, dtype=torch.int32)
    tap_y, tap_x = (taps // kw * dilation)[:, None], (taps % kw * dilation)[:, None]  # (K, 1)
    rows = torch.arange(ho, device=device, dtype=torch.int32) * stride - padding
    cols_ = torch.arange(wo, device=device, dtype=torch.int32) * stride - padding
    pos_y, pos_x = rows.repeat_interleave(wo)[None], cols_.repeat(ho)[None]  # (1, P)
    off = offset[0].reshape(k, 2 * p)  # row t: the P y-offsets of tap t, then its P x-offsets
    off_y, off_x = off[:, :p], off[:, p:]
    fy, fx = torch.floor(off_y), torch.floor(off_x)
    ly, lx = off_y - fy, off_x - fx  # (K, P), in [0, 1)
    # Offset first: every sum involves the input, so exporters cannot fold the grid into (K, P)
    # constants (two per conv, megabytes at 640); only the (K, 1) and (1, P) vectors are stored.
    y0 = (fy.to(torch.int32) + tap_y) + pos_y
    x0 = (fx.to(torch.int32) + tap_x) + pos_x
    # The 4 bilinear corners in one gather, stacked corner-major along the rows (4K, P), so the graph
    # stays small (a few dozen ops per conv, fast to convert and to run) and every tensor 2-D.
    yc = torch.cat([y0, y0, y0 + 1, y0 + 1])
    xc = torch.cat([x0, x0 + 1, x0, x0 + 1])
    wy = torch.cat([1.0 - ly, 1.0 - ly, ly, ly])
    wx = torch.cat([1.0 - lx, lx, 1.0 - lx, lx])
    valid = ((yc >= 0) & (yc <= h - 1) & (xc >= 0) & (xc <= w - 1)).to(x.dtype)
    # The explicit cast keeps the indices integer where a converter does the clamp in float (Core ML's clip).
    idx = (yc.clamp(0, h - 1) * w + xc.clamp(0, w - 1)).reshape(-1).to(torch.int64)
    weights = (wy * wx * valid * mask[0].reshape(k, p).repeat(4, 1)).reshape(4 * k * p, 1)
    cols = (table.index_select(0, idx) * weights).reshape(4, k * p * c).sum(0).reshape(k * p, c)
    # (K*P, C) -> (C, K*P) = (1, C*K, Ho, Wo), then the same 1x1 convolution as the grid_sample form
    # (so both reduce in one order and round alike).
    cols = cols.transpose(0, 1).reshape(1, c * k, ho, wo)
    return F.conv2d(cols, weight.flatten(1)[:, :, None, None], bias)


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
    if portable:
        return torch.cat([
            _deform_gather_one(x[i:i + 1], offset[i:i + 1], mask[i:i + 1], weight, bias, stride, padding, dilation)
            for i in range(x.shape[0])
        ])
    kernel = weight.shape[-1]
    y, xs = _tap_positions(offset, kernel, stride, padding, dilation)
    cols = sample_grid(x, y, xs)  # (N, C, K, Ho, Wo)
    cols = (cols * mask[:, None]).flatten(1, 2)
    # flatten/unsqueeze keep the kernel shape static for exporters (no traced size arithmetic).
    return F.conv2d(cols, weight.flatten(1)[:, :, None, None], bias)


class _NativeOnnxDeformConv(torch.autograd.Function):
    """Exports as ONNX `DeformConv` (opset 19); computes the grid_sample form when run in PyTorch.

    ONNX's offset layout, (N, 2 * kH * kW, oH, oW) with (y, x) per tap, and its mask layout are the
    ones this module already uses, so the tensors pass through unchanged.
    """

    @staticmethod
    def forward(ctx, x, weight, offset, bias, mask, stride: int, padding: int):
        if torch.onnx.is_in_onnx_export():  # only the shape is needed; the symbolic replaces the op
            return x.new_zeros(x.shape[0], weight.shape[0], offset.shape[2], offset.shape[3])
        return modulated_deform_conv2d(x, offset, mask, weight, bias, stride=stride, padding=padding)

    @staticmethod
    def symbolic(g, x, weight, offset, bias, mask, stride: int, padding: int):
        k = weight.type().sizes()[-1]
        return g.op("DeformConv", x, weight, offset, bias, mask, kernel_shape_i=[k, k], strides_i=[stride, stride],
                    pads_i=[padding] * 4, dilations_i=[1, 1], group_i=1, offset_group_i=1)


class ModulatedDeformConv2d(nn.Module):
    """3x3 modulated deformable conv with its offset and modulator convs (FeatherFace V1 layout)."""

    def __init__(self, inp: int, oup: int, kernel_size: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        taps = kernel_size * kernel_size
        self.stride, self.padding = stride, padding
        self.portable = False
        self.native_onnx = False  # export as ONNX DeformConv instead of the portable gathers
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
        if self.native_onnx:
            bias = self.regular_conv.bias
            if bias is None:
                bias = torch.zeros(self.regular_conv.out_channels, dtype=x.dtype)
            return _NativeOnnxDeformConv.apply(x, self.regular_conv.weight, offset, bias, mask, self.stride, self.padding)
        return modulated_deform_conv2d(
            x, offset, mask, self.regular_conv.weight, self.regular_conv.bias,
            stride=self.stride, padding=self.padding, portable=self.portable,
        )


def set_portable_deform(model: nn.Module, portable: bool = True, *, native_onnx: bool = False) -> nn.Module:
    """Switch every deformable conv of `model` to the gather form (for export) or back.

    `native_onnx`: export them as ONNX `DeformConv` (opset 19) instead.
    """
    for m in model.modules():
        if isinstance(m, ModulatedDeformConv2d):
            m.portable = portable
            m.native_onnx = native_onnx
    return model
