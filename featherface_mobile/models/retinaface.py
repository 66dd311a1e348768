"""RetinaFace with a MobileNetV1-0.25 body (Pytorch_Retinaface layout, 426,608 parameters)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import FPN, SSH, MobileNetV1x025, head_outputs, make_heads
from .registry import DetectorConfig, register_model


@dataclass(frozen=True)
class RetinaFaceConfig(DetectorConfig):
    out_channels: int = 64


class RetinaFace(nn.Module):
    def __init__(self, cfg: RetinaFaceConfig) -> None:
        super().__init__()
        self.body = MobileNetV1x025()
        self.fpn = FPN(self.body.out_channels, cfg.out_channels)
        self.ssh1 = SSH(cfg.out_channels, cfg.out_channels)
        self.ssh2 = SSH(cfg.out_channels, cfg.out_channels)
        self.ssh3 = SSH(cfg.out_channels, cfg.out_channels)
        self.ClassHead, self.BboxHead, self.LandmarkHead = make_heads(cfg.out_channels, cfg.anchors)

    def forward(self, x: torch.Tensor):
        p = self.fpn(self.body(x))
        feats = [self.ssh1(p[0]), self.ssh2(p[1]), self.ssh3(p[2])]
        return head_outputs(feats, self.ClassHead, self.BboxHead, self.LandmarkHead, softmax=not self.training)


@register_model(
    "retinaface-mnet025",
    RetinaFaceConfig(),
    "RetinaFace, MobileNetV1-0.25 body, FPN + SSH (biubug6/Pytorch_Retinaface)",
    default_weights="shared:weights/retinaface_mnet025/mobilenet0.25_Final.pth",
)
def retinaface_mnet025(cfg: RetinaFaceConfig) -> nn.Module:
    return RetinaFace(cfg)
