"""Reading trained checkpoints: safe loading, key clean-up, architecture detection, strict load."""
from __future__ import annotations

import pickle
import zipfile
from collections import Counter
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from .errors import FeatherfaceError
from .models import get_spec, list_models
from .paths import resolve_weights_ref

_PROFILER_SUFFIXES = ("total_ops", "total_params")


def read_state_dict(path: str | Path, *, trust: bool = False) -> dict[str, torch.Tensor]:
    """Load a checkpoint file into a clean state dict (no `module.` prefix, no profiler buffers).

    Uses `torch.load(weights_only=True)`; `trust=True` allows arbitrary pickles (only for files you trust).
    """
    path = Path(path)
    if not path.exists():
        raise FeatherfaceError(f"checkpoint not found: {path}; pass an existing .pth file with --weights")
    if path.is_dir():
        raise FeatherfaceError(f"checkpoint path is a directory: {path}; pass the .pth file inside it")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Weights only" in str(e):
            raise FeatherfaceError(
                f"checkpoint {path} holds pickled Python objects that weights_only loading refuses; "
                "if you trust the file, pass --trust-checkpoint"
            ) from None
        raise FeatherfaceError(f"cannot read checkpoint {path}: not a PyTorch checkpoint ({_first_line(e)}); re-export or re-download it") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise FeatherfaceError(
            f"cannot read checkpoint {path}: truncated or not a PyTorch file ({_first_line(e)}); re-download or re-save it"
        ) from None
    for key in ("state_dict", "model", "model_state_dict", "net"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FeatherfaceError(f"checkpoint {path} does not contain a state dict of tensors; save model.state_dict()")
    out = {}
    for k, v in obj.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if k.split(".")[-1] in _PROFILER_SUFFIXES:
            continue
        out[k] = v
    return out


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


@lru_cache(maxsize=None)
def _signature(name: str) -> frozenset[tuple[str, tuple[int, ...]]]:
    sd = get_spec(name).build().state_dict()
    return frozenset((k, tuple(v.shape)) for k, v in sd.items())


def _prefixes(keys) -> str:
    counts = Counter(".".join(k.split(".")[:2]) + ".*" for k in keys)
    shown = [p for p, _ in counts.most_common(4)]
    more = "" if len(counts) <= 4 else f", +{len(counts) - 4} more"
    return ", ".join(shown) + more


def match_architecture(state_dict: dict[str, torch.Tensor]) -> tuple[str, int, int, str]:
    """(closest model, missing count, unexpected count, description of the differences)."""
    sig = frozenset((k, tuple(v.shape)) for k, v in state_dict.items())
    best = None
    for name in list_models():
        ref = _signature(name)
        missing, unexpected = ref - sig, sig - ref
        score = len(missing) + len(unexpected)
        if best is None or score < best[0]:
            best = (score, name, missing, unexpected)
    _, name, missing, unexpected = best
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_prefixes(k for k, _ in missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_prefixes(k for k, _ in unexpected)})")
    return name, len(missing), len(unexpected), "; ".join(parts)


def detect_architecture(state_dict: dict[str, torch.Tensor]) -> str:
    """Name of the registered model whose keys and shapes the checkpoint matches exactly."""
    name, missing, unexpected, diff = match_architecture(state_dict)
    if missing or unexpected:
        raise FeatherfaceError(
            f"checkpoint matches no registered model; closest is {name} with {diff}; "
            "check that it is a RetinaFace/FeatherFace checkpoint or pass --model"
        )
    return name


def load_model(
    weights: str | Path | None = None, model: str | None = None, *, trust: bool = False
) -> nn.Module:
    """Build `model` (detected from the checkpoint when omitted) and load `weights` strictly.

    Without `weights`, the model's default trained checkpoint is used (shared folder or package).
    """
    if weights is None:
        name = model or "featherface-v2"
        ref = get_spec(name).default_weights
        weights = resolve_weights_ref(ref) if ref else None
        if weights is None:
            raise FeatherfaceError(
                f"no trained weights available for {name}; pass --weights PATH (or set FEATHERFACE_SHARED to the shared folder)"
            )
    sd = read_state_dict(weights, trust=trust)
    name = model or detect_architecture(sd)
    net = get_spec(name).build()
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in sd.items()}
    missing = sorted(k for k in expected if got.get(k) != expected[k])
    unexpected = sorted(k for k in got if expected.get(k) != got[k])
    if missing or unexpected:
        closest, _, _, diff = match_architecture(sd)
        hint = f"it looks like a {closest} checkpoint; use --model {closest}" if closest != name else "re-export it from the matching code"
        raise FeatherfaceError(f"checkpoint {Path(weights).name} does not fit {name}: {_diff(missing, unexpected)}; {hint}")
    net.load_state_dict(sd, strict=True)
    net.weights_path = str(weights)
    return net.eval()


# What load_model sets on a model beyond its weights; a transformed copy (BN-folded, equalized,
# QAT-trained) carries them on so that export and metadata still know what it is.
MODEL_ATTRS = ("config", "model_name", "weights_path")


def carry_model_attrs(copy: nn.Module, model: nn.Module) -> nn.Module:
    """`copy`, given `model`'s config, model_name and weights_path (those it has)."""
    for attr in MODEL_ATTRS:
        if hasattr(model, attr):
            setattr(copy, attr, getattr(model, attr))
    return copy


def _diff(missing, unexpected) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_prefixes(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_prefixes(unexpected)})")
    return "; ".join(parts)
