"""FeatherFace V2 and V2-Ultra: MobileNet-0.25 + shared CBAM + light BiFPN + grouped SSH + shared heads.

V2 follows the user's design seed (shared/seeds/001_*): CBAM_Plus with weights shared across levels
(reduction 32) on the backbone and BiFPN outputs, a 32-channel BiFPN of depthwise-separable convs
(2 cells), a grouped SSH (groups 4) per level, a parameter-free channel shuffle, and one shared conv
per level feeding the class/box/landmark heads. V2-Ultra adds the seeds' five "zero-parameter"
techniques, each behind a config switch, in forms that ONNX, TFLite and Core ML all run; docs/v2.md
states where each one differs from the seed's formula and why.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (
    SSH,
    BiFPNCell,
    ChannelGate,
    MobileNetV1x025,
    SamePadConv,
    SpatialGate,
    channel_shuffle,
    head_outputs,
    make_heads,
    same_maxpool3x3s2,
    upsample2x,
)
from .registry import DetectorConfig, register_model


@dataclass(frozen=True)
class FeatherFaceV2Config(DetectorConfig):
    out_channels: int = 32
    bifpn_repeats: int = 2
    cbam_reduction: int = 32
    lateral_groups: int = 4  # the seed's BiFPN_Light `reduction_factor=4`, read as grouped 1x1 laterals
    ssh_groups: int = 4
    shuffle_groups: int = 4


@dataclass(frozen=True)
class FeatherFaceV2UltraConfig(FeatherFaceV2Config):
    """V2 plus the five seed techniques; with every switch off the model computes exactly V2."""

    smart_feature_reuse: bool = False
    attention_multiplication: bool = False
    multi_scale_intelligence: bool = False
    progressive_enhancement: bool = False
    dynamic_weight_sharing: bool = False


ULTRA_SWITCHES = (
    "smart_feature_reuse",
    "attention_multiplication",
    "multi_scale_intelligence",
    "progressive_enhancement",
    "dynamic_weight_sharing",
)


class SharedCBAM(nn.Module):
    """CBAM_Plus: one channel MLP per distinct level width, one spatial gate for every level.

    Levels of equal width (the three 32-channel BiFPN outputs) share one whole CBAM; levels of
    different widths (64/128/256 backbone outputs) cannot share an MLP, so they share the spatial gate.
    """

    def __init__(self, widths: tuple[int, ...], reduction: int) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.channel = nn.ModuleDict({str(c): ChannelGate(c, reduction) for c in sorted(set(widths))})
        self.spatial = SpatialGate()

    def forward(self, x: torch.Tensor, level: int) -> torch.Tensor:
        return self.spatial(self.channel[str(self.widths[level])](x))


def _grouped_lateral(inp: int, oup: int, groups: int) -> nn.Sequential:
    return nn.Sequential(SamePadConv(inp, oup, 1, groups=groups), nn.BatchNorm2d(oup, momentum=0.01, eps=1e-3))


class BiFPNLightCell(BiFPNCell):
    """A BiFPN cell whose first-cell 1x1 lateral projections are grouped (`lateral_groups`).

    The fusion and separable convs are the V1 cell's; the grouped laterals are mixed across groups by
    the pointwise convs that follow every fusion.
    """

    def __init__(self, channels: int, in_channels: tuple[int, ...], first: bool, lateral_groups: int) -> None:
        super().__init__(channels, in_channels, first)
        if first:
            for name, c in (
                ("p5_down_channel", in_channels[2]),
                ("p4_down_channel", in_channels[1]),
                ("p3_down_channel", in_channels[0]),
                ("p4_down_channel_2", in_channels[1]),
                ("p5_down_channel_2", in_channels[2]),
            ):
                setattr(self, name, _grouped_lateral(c, channels, lateral_groups))


def _head_conv(channels: int) -> nn.Sequential:
    """SharedMultiHead's shared 3x3 conv (C -> C/2) + BN + ReLU, feeding the three 1x1 heads."""
    half = channels // 2
    return nn.Sequential(nn.Conv2d(channels, half, 3, 1, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))


def halve_nearest(x: torch.Tensor) -> torch.Tensor:
    # Nearest resize to half size keeps the even rows/columns; a 1x1 max pool with stride 2 does
    # exactly that with an op every runtime has.
    return F.max_pool2d(x, 1, 2)


def cosine_gate(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-pixel cosine similarity of two maps over channels, clipped at 0: (N, 1, H, W)."""
    dot = (a * b).sum(dim=1, keepdim=True)
    norms = (a * a).sum(dim=1, keepdim=True) * (b * b).sum(dim=1, keepdim=True)
    return F.relu(dot / torch.sqrt(norms + eps))


def smart_feature_reuse(p: list[torch.Tensor]) -> list[torch.Tensor]:
    """P3 and P5 reuse P4 (upsampled / max-pooled), each pixel weighted by its similarity to P4.

    The seed routes every position by an HW x HW similarity matrix; here each position compares
    itself only with the co-located P4 feature (the diagonal of that matrix across levels).
    """
    p3, p4, p5 = p
    up, down = upsample2x(p4), same_maxpool3x3s2(p4)
    return [p3 + cosine_gate(p3, up) * up, p4, p5 + cosine_gate(p5, down) * down]


def multi_scale_intelligence(r: list[torch.Tensor]) -> list[torch.Tensor]:
    """The seed's fixed cross-level fusion: P3 + 0.3 P4, P4 + 0.2 P3 + 0.2 P5, P5 + 0.3 P4 (nearest resize)."""
    r3, r4, r5 = r
    return [
        r3 + 0.3 * upsample2x(r4),
        r4 + 0.2 * halve_nearest(r3) + 0.2 * upsample2x(r5),
        r5 + 0.3 * halve_nearest(r4),
    ]


def progressive_enhancement(f: list[torch.Tensor], alpha: float = 0.1) -> list[torch.Tensor]:
    """E(x) = x + alpha*tanh(x), each level also fed the enhanced level below it (max-pooled)."""
    out = [f[0] + alpha * torch.tanh(f[0])]
    for x in f[1:]:
        out.append(x + alpha * torch.tanh(x + same_maxpool3x3s2(out[-1])))
    return out


class FeatherFaceV2(nn.Module):
    def __init__(self, cfg: FeatherFaceV2Config) -> None:
        super().__init__()
        ch = cfg.out_channels
        self.switches = {s: bool(getattr(cfg, s, False)) for s in ULTRA_SWITCHES}
        self.body = MobileNetV1x025()
        self.backbone_cbam = SharedCBAM(self.body.out_channels, cfg.cbam_reduction)
        self.bifpn = nn.Sequential(
            *[
                BiFPNLightCell(ch, self.body.out_channels, first=(i == 0), lateral_groups=cfg.lateral_groups)
                for i in range(cfg.bifpn_repeats)
            ]
        )
        self.bifpn_cbam = SharedCBAM((ch, ch, ch), cfg.cbam_reduction)
        self.ssh1 = SSH(ch, ch, conv="grouped", groups=cfg.ssh_groups)
        self.ssh2 = SSH(ch, ch, conv="grouped", groups=cfg.ssh_groups)
        self.ssh3 = SSH(ch, ch, conv="grouped", groups=cfg.ssh_groups)
        # The seed's ChannelShuffle_Light views (groups, C/groups) then transposes; channel_shuffle
        # views (C/g, g), so g = C/groups gives the seed's order.
        self.shuffle_view = ch // cfg.shuffle_groups
        if self.switches["dynamic_weight_sharing"]:
            # One per-channel weight vector shared by the three levels. The seed initialises it
            # with randn (random sign per channel); ones keep the features' signs at start.
            self.dynamic_weights = nn.Parameter(torch.ones(1, ch, 1, 1))
        self.head_conv = nn.ModuleList(_head_conv(ch) for _ in range(3))
        self.ClassHead, self.BboxHead, self.LandmarkHead = make_heads(ch // 2, cfg.anchors)

    def _bifpn_attention(self, x: torch.Tensor, level: int) -> torch.Tensor:
        if not self.switches["attention_multiplication"]:
            return self.bifpn_cbam(x, level)
        # Three passes of the same shared CBAM, each fed the sum of the previous ones (seed 003).
        a1 = self.bifpn_cbam(x, level)
        a2 = self.bifpn_cbam(a1 + x, level)
        return self.bifpn_cbam(a2 + a1 + x, level)

    def forward(self, x: torch.Tensor):
        on = self.switches
        c = self.body(x)
        a = [F.relu(self.backbone_cbam(f, i) + f) for i, f in enumerate(c)]
        p = self.bifpn(a)
        if on["smart_feature_reuse"]:
            p = smart_feature_reuse(p)
        r = [F.relu(self._bifpn_attention(f, i) + f) for i, f in enumerate(p)]
        if on["multi_scale_intelligence"]:
            r = multi_scale_intelligence(r)
        f = [channel_shuffle(ssh(t), self.shuffle_view) for ssh, t in zip((self.ssh1, self.ssh2, self.ssh3), r)]
        if on["progressive_enhancement"]:
            f = progressive_enhancement(f)
        if on["dynamic_weight_sharing"]:
            f = [t * (self.dynamic_weights * torch.sigmoid(t.mean(dim=(2, 3), keepdim=True))) for t in f]
        h = [conv(t) for conv, t in zip(self.head_conv, f)]
        return head_outputs(h, self.ClassHead, self.BboxHead, self.LandmarkHead, softmax=not self.training)


# Top-level module name -> row of the breakdown table (docs/v2.md, tests).
_BREAKDOWN_ROWS = {
    "body": "backbone",
    "backbone_cbam": "cbam_plus",
    "bifpn_cbam": "cbam_plus",
    "bifpn": "bifpn_light",
    "ssh1": "ssh_grouped",
    "ssh2": "ssh_grouped",
    "ssh3": "ssh_grouped",
    "head_conv": "shared_multihead",
    "ClassHead": "shared_multihead",
    "BboxHead": "shared_multihead",
    "LandmarkHead": "shared_multihead",
    "dynamic_weights": "dynamic_weight_sharing",
}


def parameter_breakdown(model: nn.Module) -> dict[str, int]:
    """Parameters per component (rows of the seed's table), plus `total`.

    `channel_shuffle` is listed (always 0) because the seed's table lists it; modules this table
    does not know are reported under their own attribute name.
    """
    rows = {"backbone": 0, "cbam_plus": 0, "bifpn_light": 0, "ssh_grouped": 0, "channel_shuffle": 0, "shared_multihead": 0}
    for name, p in model.named_parameters():
        row = _BREAKDOWN_ROWS.get(name.split(".")[0], name.split(".")[0])
        rows[row] = rows.get(row, 0) + p.numel()
    rows["total"] = sum(rows.values())
    return rows


@register_model(
    "featherface-v2",
    FeatherFaceV2Config(),
    "FeatherFace V2 (design seed): shared CBAM r32, 32-channel light BiFPN x2, grouped SSH, shared heads",
    default_weights="package:featherface_v2.pth",  # distilled from V1 here: featherface_mobile/weights/MODEL_CARD.md
)
def featherface_v2(cfg: FeatherFaceV2Config) -> nn.Module:
    return FeatherFaceV2(cfg)


@register_model(
    "featherface-v2-ultra",
    FeatherFaceV2UltraConfig(**{s: True for s in ULTRA_SWITCHES}),
    "FeatherFace V2 + the seeds' five low-parameter techniques in exportable form (see docs/v2.md)",
    default_weights="package:featherface_v2_ultra.pth",
)
def featherface_v2_ultra(cfg: FeatherFaceV2UltraConfig) -> nn.Module:
    return FeatherFaceV2(cfg)
