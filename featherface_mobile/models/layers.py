"""Building blocks shared by the detectors: conv-BN-activation stacks, CBAM, BiFPN, SSH, heads.

Module and attribute names follow the checkpoints people trained (Pytorch_Retinaface and the
FeatherFace training repository), so their state dicts load strictly. Every forward is export
friendly: static padding, fixed 2x nearest upsampling, reductions instead of adaptive pooling.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .deform import ModulatedDeformConv2d


def conv_bn(inp: int, oup: int, stride: int = 1, leaky: float = 0.0) -> nn.Sequential:
    """3x3 conv + BN + LeakyReLU (keys `0.weight`, `1.*`)."""
    return nn.Sequential(
        nn.Conv2d(inp, oup, 3, stride, 1, bias=False),
        nn.BatchNorm2d(oup),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


def conv_bn_no_relu(inp: int, oup: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(oup))


def conv_bn1x1(inp: int, oup: int, stride: int = 1, leaky: float = 0.0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, 1, stride, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


def conv_dw(inp: int, oup: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    """Depthwise 3x3 + BN + LeakyReLU, pointwise 1x1 + BN + LeakyReLU (MobileNetV1 block)."""
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


class MobileNetV1x025(nn.Module):
    """MobileNetV1 width 0.25: returns the stride 8/16/32 feature maps (64/128/256 channels)."""

    out_channels = (64, 128, 256)

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            conv_bn(3, 8, 2, leaky=0.1),
            conv_dw(8, 16, 1),
            conv_dw(16, 32, 2),
            conv_dw(32, 32, 1),
            conv_dw(32, 64, 2),
            conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *[conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        c5 = self.stage3(c4)
        return [c3, c4, c5]


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    # Input sizes are multiples of 32, so every level is exactly twice the next one.
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class FPN(nn.Module):
    """RetinaFace's top-down FPN (1x1 lateral convs, 3x3 merges)."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.output1 = conv_bn1x1(in_channels[0], out_channels, leaky=leaky)
        self.output2 = conv_bn1x1(in_channels[1], out_channels, leaky=leaky)
        self.output3 = conv_bn1x1(in_channels[2], out_channels, leaky=leaky)
        self.merge1 = conv_bn(out_channels, out_channels, leaky=leaky)
        self.merge2 = conv_bn(out_channels, out_channels, leaky=leaky)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + upsample2x(o3))
        o1 = self.merge1(o1 + upsample2x(o2))
        return [o1, o2, o3]


class ChannelGate(nn.Module):
    """CBAM channel attention: a shared MLP over global average and max pooling."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3))
        mx = x.amax(dim=(2, 3))
        scale = torch.sigmoid(self.mlp(avg) + self.mlp(mx))
        return x * scale[:, :, None, None]


class SpatialConv(nn.Module):
    """7x7 conv (no bias) + BN over the [max, mean] channel summary."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, 1, (kernel_size - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class SpatialGate(nn.Module):
    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.spatial = SpatialConv(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summary = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(summary))


class CBAM(nn.Module):
    """Channel gate then spatial gate (Woo et al. 2018)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.ChannelGate = ChannelGate(channels, reduction)
        self.SpatialGate = SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.SpatialGate(self.ChannelGate(x))


class SamePadConv(nn.Module):
    """Conv whose TF-style SAME padding is fixed at build time (stride 1: symmetric)."""

    def __init__(self, inp: int, oup: int, kernel_size: int, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inp, oup, kernel_size, 1, (kernel_size - 1) // 2, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SeparableConvBlock(nn.Module):
    """Depthwise 3x3 (no bias) + pointwise 1x1 (bias) + BN(eps 1e-3), no activation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise_conv = SamePadConv(channels, channels, 3, groups=channels, bias=False)
        self.pointwise_conv = SamePadConv(channels, channels, 1)
        self.bn = nn.BatchNorm2d(channels, momentum=0.01, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise_conv(self.depthwise_conv(x)))


def same_maxpool3x3s2(x: torch.Tensor) -> torch.Tensor:
    # TF SAME padding of a 3x3/2 max pool on an even-sized map pads one zero row/column at the
    # bottom/right; the reference implementation pads with zeros (not -inf), so we do too. The zeros
    # are concatenated rather than added by F.pad: onnx2tf folds a Pad followed by MaxPool into the
    # pool's own SAME padding, which pads with -inf, and the TFLite model then differs wherever the
    # border is negative (0.23 at V2's outputs).
    b, c, h, w = x.shape
    x = torch.cat([x, x.new_zeros(b, c, 1, w)], dim=2)
    x = torch.cat([x, x.new_zeros(b, c, h + 1, 1)], dim=3)
    return F.max_pool2d(x, 3, 2)


def _down_channel(inp: int, oup: int) -> nn.Sequential:
    return nn.Sequential(SamePadConv(inp, oup, 1), nn.BatchNorm2d(oup, momentum=0.01, eps=1e-3))


class BiFPNCell(nn.Module):
    """One BiFPN cell over three levels with fast normalised fusion and Swish before each conv."""

    def __init__(self, channels: int, in_channels: tuple[int, ...], first: bool, epsilon: float = 1e-4) -> None:
        super().__init__()
        self.first = first
        self.epsilon = epsilon
        self.conv4_up = SeparableConvBlock(channels)
        self.conv3_up = SeparableConvBlock(channels)
        self.conv4_down = SeparableConvBlock(channels)
        self.conv5_down = SeparableConvBlock(channels)
        if first:
            self.p5_down_channel = _down_channel(in_channels[2], channels)
            self.p4_down_channel = _down_channel(in_channels[1], channels)
            self.p3_down_channel = _down_channel(in_channels[0], channels)
            self.p4_down_channel_2 = _down_channel(in_channels[1], channels)
            self.p5_down_channel_2 = _down_channel(in_channels[2], channels)
        self.p4_w1 = nn.Parameter(torch.ones(2))
        self.p3_w1 = nn.Parameter(torch.ones(2))
        self.p4_w2 = nn.Parameter(torch.ones(3))
        self.p5_w2 = nn.Parameter(torch.ones(3))

    def _fusion(self, w: torch.Tensor) -> torch.Tensor:
        w = F.relu(w)
        return w / (w.sum() + self.epsilon)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = feats
        if self.first:
            p3_in, p4_in, p5_in = self.p3_down_channel(p3), self.p4_down_channel(p4), self.p5_down_channel(p5)
        else:
            p3_in, p4_in, p5_in = p3, p4, p5
        w = self._fusion(self.p4_w1)
        p4_up = self.conv4_up(F.silu(w[0] * p4_in + w[1] * upsample2x(p5_in)))
        w = self._fusion(self.p3_w1)
        p3_out = self.conv3_up(F.silu(w[0] * p3_in + w[1] * upsample2x(p4_up)))
        if self.first:
            p4_in, p5_in = self.p4_down_channel_2(p4), self.p5_down_channel_2(p5)
        w = self._fusion(self.p4_w2)
        p4_out = self.conv4_down(F.silu(w[0] * p4_in + w[1] * p4_up + w[2] * same_maxpool3x3s2(p3_out)))
        # The reference registers three weights for P5 but fuses only two inputs.
        w = self._fusion(self.p5_w2)
        p5_out = self.conv5_down(F.silu(w[0] * p5_in + w[1] * same_maxpool3x3s2(p4_out)))
        return [p3_out, p4_out, p5_out]


def _deform_bn(inp: int, oup: int, leaky: float | None) -> nn.Sequential:
    layers: list[nn.Module] = [ModulatedDeformConv2d(inp, oup), nn.BatchNorm2d(oup)]
    if leaky is not None:
        layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
    return nn.Sequential(*layers)


def _conv_bn(inp: int, oup: int, leaky: float | None, groups: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(inp, oup, 3, 1, 1, groups=groups, bias=False), nn.BatchNorm2d(oup)]
    if leaky is not None:
        layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
    return nn.Sequential(*layers)


class SSH(nn.Module):
    """Single-stage headless context module: 3x3, 5x5 (two 3x3) and 7x7 (three 3x3) branches.

    `conv="plain"` is RetinaFace's, `conv="deform"` FeatherFace V1's modulated deformable convs,
    `conv="grouped"` V2's grouped 3x3 convs (`groups` per conv).
    """

    def __init__(self, inp: int, oup: int, conv: str = "plain", groups: int = 1) -> None:
        super().__init__()
        assert oup % 4 == 0
        leaky = 0.1 if oup <= 64 else 0.0
        if conv == "deform":
            make = _deform_bn
        else:
            g = groups if conv == "grouped" else 1
            make = lambda i, o, lk: _conv_bn(i, o, lk, groups=g)  # noqa: E731
        self.conv3X3 = make(inp, oup // 2, None)
        self.conv5X5_1 = make(inp, oup // 4, leaky)
        self.conv5X5_2 = make(oup // 4, oup // 4, None)
        self.conv7X7_2 = make(oup // 4, oup // 4, leaky)
        self.conv7x7_3 = make(oup // 4, oup // 4, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c3 = self.conv3X3(x)
        c5_1 = self.conv5X5_1(x)
        c5 = self.conv5X5_2(c5_1)
        c7 = self.conv7x7_3(self.conv7X7_2(c5_1))
        # ReLU on each branch, then concat: the same values as ReLU after the concat, but each ReLU
        # fuses into its conv in TFLite (XNNPACK does not delegate a standalone INT8 RELU).
        return torch.cat([F.relu(c3), F.relu(c5), F.relu(c7)], dim=1)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle, the 'alternative' order: view (C/g, g) then transpose."""
    n, c, h, w = x.shape
    return x.reshape(n, c // groups, groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)


def shuffle_block(channels: int, groups: int = 2) -> nn.Sequential:
    """FeatherFace V1's shuffle block: shuffle, 1x1 reduce, depthwise 3x3, 1x1 expand, ReLU."""
    half = channels // 2
    return nn.Sequential(
        ChannelShuffle(groups),
        nn.Conv2d(channels, half, 1, bias=False),
        nn.BatchNorm2d(half),
        nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False),
        nn.BatchNorm2d(half),
        nn.Conv2d(half, channels, 1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
    )


class Head(nn.Module):
    """1x1 conv predicting `values` numbers per anchor, flattened to (N, H*W*anchors, values)."""

    def __init__(self, channels: int, anchors: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(channels, anchors * values, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


def make_heads(channels: int, anchors: int, levels: int = 3) -> tuple[nn.ModuleList, nn.ModuleList, nn.ModuleList]:
    """ClassHead, BboxHead, LandmarkHead lists, one head per level."""
    return (
        nn.ModuleList(Head(channels, anchors, 2) for _ in range(levels)),
        nn.ModuleList(Head(channels, anchors, 4) for _ in range(levels)),
        nn.ModuleList(Head(channels, anchors, 10) for _ in range(levels)),
    )


def head_outputs(
    feats: list[torch.Tensor], cls: nn.ModuleList, box: nn.ModuleList, ldm: nn.ModuleList, softmax: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loc, conf, landms): three separate tensors, conf softmaxed unless training."""
    loc = torch.cat([h(f) for h, f in zip(box, feats)], dim=1)
    logits = torch.cat([h(f) for h, f in zip(cls, feats)], dim=1)
    landms = torch.cat([h(f) for h, f in zip(ldm, feats)], dim=1)
    conf = F.softmax(logits, dim=-1) if softmax else logits
    return loc, conf, landms
