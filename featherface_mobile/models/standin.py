"""Seeded untrained stand-ins for models that have no trained checkpoint yet (V1-paper, V2, V2-Ultra).

Export and speed must be exercised on every registered model, trained or not. A plain random init
scores every anchor near 0.5, so its decoded faces are thousands of ties; the stand-in keeps the
random weights but rescales each face-score head on a few real images so that only a few anchors
per image score above 0.5, as with a trained model. Its faces still mean nothing: parity checks on
a stand-in compare raw outputs; decoded-face checks need a trained checkpoint.
"""
from __future__ import annotations

import torch
from torch import nn

from .registry import create_model

# Face logit after standardisation: (d - q) / std(d) * SPREAD, where d is the raw face - background
# logit and q its FACE_QUANTILE over the anchors of those images: about 0.3% of anchors score > 0.5,
# a few faces per image as with a trained model (so post-processing costs what it costs in use).
SPREAD = 2.0
FACE_QUANTILE = 0.997


def _randomize_batchnorm(model: nn.Module) -> None:
    """Non-trivial BN statistics, so activations are not an identity of the init."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.uniform_(-0.1, 0.1)


@torch.no_grad()
def _standardise_class_heads(model: nn.Module, images: torch.Tensor) -> None:
    """Rewrite each 2-class head conv so a few anchors per image score above 0.5, as when trained."""
    heads = [h.conv1x1 for h in model.ClassHead]
    seen: dict[int, torch.Tensor] = {}
    hooks = [h.register_forward_hook(lambda m, _i, out, k=i: seen.__setitem__(k, out)) for i, h in enumerate(heads)]
    try:
        model(images)
    finally:
        for hook in hooks:
            hook.remove()
    for i, conv in enumerate(heads):
        out = seen[i]  # (N, 2 * anchors, H, W): (background, face) per anchor
        anchors = out.shape[1] // 2
        w = conv.weight.view(anchors, 2, *conv.weight.shape[1:])
        b = conv.bias.view(anchors, 2)
        for a in range(anchors):
            diff = out[:, 2 * a + 1] - out[:, 2 * a]
            gain = SPREAD / diff.std().clamp(min=1e-6)
            w[a, 1] = (w[a, 1] - w[a, 0]) * gain
            b[a, 1] = (b[a, 1] - b[a, 0] - torch.quantile(diff.flatten(), FACE_QUANTILE)) * gain
            w[a, 0] = 0.0
            b[a, 0] = 0.0


def standin_images(size: int = 320, count: int = 8) -> torch.Tensor:
    """The real images the heads are standardised on: the last `count` shared WIDER images, else the astronaut."""
    import numpy as np

    from ..detect import read_image
    from ..paths import wider_val_dir
    from ..processing import letterbox, normalize

    data = wider_val_dir()
    if data is not None:
        images = [read_image(p) for p in sorted((data / "images").glob("*.jpg"))[-count:]]
    else:
        from skimage.data import astronaut

        images = [np.ascontiguousarray(astronaut()[:, :, ::-1])]
    return torch.from_numpy(np.concatenate([normalize(letterbox(im, size)[0]) for im in images]))


def untrained_standin(name: str, images: torch.Tensor | None = None, *, seed: int = 0) -> nn.Module:
    """`create_model(name)` with seeded random weights and standardised face-score heads.

    `images`: an NCHW float batch preprocessed as at run time (default: `standin_images()`).
    """
    images = standin_images() if images is None else images
    torch.manual_seed(seed)
    model = create_model(name)
    _randomize_batchnorm(model)
    model.eval()
    _standardise_class_heads(model, images)
    return model
