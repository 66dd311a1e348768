"""Initialise a detector's MobileNet-0.25 `body` from the trained RetinaFace body or ImageNet weights.

Used before training V2/V2-Ultra (or any model whose backbone is `MobileNetV1x025` as `body`):
every backbone tensor must be found with the right shape, tensors outside the backbone are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..checkpoint import read_state_dict
from ..errors import FeatherfaceError

# Files of the shared folder behind the named sources.
SOURCES = {
    "retinaface": "weights/retinaface_mnet025/mobilenet0.25_Final.pth",  # keys body.stage*
    "imagenet": "weights/retinaface_mnet025/mobilenetV1X0.25_pretrain.tar",  # {'state_dict': module.stage*}
}
_PREFIXES = ("body.", "")  # after read_state_dict has dropped a leading `module.`
# Checkpoints saved before PyTorch 0.4.1 have no BN batch counters; they carry no weights.
_OPTIONAL_SUFFIX = "num_batches_tracked"


@dataclass(frozen=True)
class BackboneInit:
    path: Path
    prefix: str  # key prefix of the backbone in the file, after a leading `module.` is dropped
    loaded: int  # backbone tensors copied
    ignored: int  # tensors of the file outside the backbone


def init_backbone(model: nn.Module, source: str | Path, shared_dir: str | Path | None = None) -> BackboneInit:
    """Copy MobileNet-0.25 weights into `model.body` (strict over the backbone's keys and shapes).

    `source` is "retinaface", "imagenet" (files of the shared folder, `shared_dir` or the default
    one) or a path to any checkpoint holding a MobileNet-0.25 body.
    """
    body = getattr(model, "body", None)
    if not isinstance(body, nn.Module):
        raise FeatherfaceError(
            f"{type(model).__name__} has no `body` backbone; init_backbone needs a model built on MobileNetV1x025"
        )
    path = _resolve(source, shared_dir)
    state = read_state_dict(path)  # torch.load(weights_only=True), `module.` and profiler buffers dropped
    expected = body.state_dict()
    prefix = next((p for p in _PREFIXES if f"{p}stage1.0.0.weight" in state), None)
    if prefix is None:
        raise FeatherfaceError(
            f"{path.name} holds no MobileNet-0.25 backbone (no key like body.stage1.0.0.weight or "
            "stage1.0.0.weight); pass 'retinaface', 'imagenet' or a RetinaFace/FeatherFace checkpoint"
        )
    missing, mismatched, found = [], [], {}
    for key, ref in expected.items():
        t = state.get(prefix + key)
        if t is None:
            if not key.endswith(_OPTIONAL_SUFFIX):
                missing.append(key)
            found[key] = ref
        elif tuple(t.shape) != tuple(ref.shape):
            mismatched.append(f"{key} {tuple(t.shape)} != {tuple(ref.shape)}")
        else:
            found[key] = t
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing backbone keys (first: {prefix}{missing[0]})")
        if mismatched:
            parts.append(f"{len(mismatched)} backbone shape mismatches (first: {prefix}{mismatched[0]})")
        raise FeatherfaceError(
            f"{path.name} does not fit a MobileNet-0.25 body: {'; '.join(parts)}; pass a MobileNetV1-0.25 (width 0.25) checkpoint"
        )
    body.load_state_dict(found, strict=True)
    loaded = sum(prefix + k in state for k in expected)
    return BackboneInit(path=path, prefix=prefix, loaded=loaded, ignored=len(state) - loaded)


def _resolve(source: str | Path, shared_dir: str | Path | None) -> Path:
    if isinstance(source, str) and source in SOURCES:
        if shared_dir is None:
            from ..paths import shared_dir as default_shared_dir

            shared_dir = default_shared_dir()
            if shared_dir is None:
                raise FeatherfaceError(
                    f"backbone source {source!r} lives in the shared folder, which was not found; "
                    "set FEATHERFACE_SHARED or pass shared_dir=..."
                )
        path = Path(shared_dir) / SOURCES[source]
    else:
        path = Path(source)
    if not path.is_file():
        raise FeatherfaceError(
            f"backbone weights not found: {path}; pass 'retinaface', 'imagenet' (with the shared folder) or an existing checkpoint file"
        )
    return path
