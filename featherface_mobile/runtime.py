"""Runners: load any artefact (checkpoint, .onnx, .tflite, .mlpackage) and run it on a batch.

Every runner takes a float32 NCHW batch (BGR minus mean) and returns (loc, conf, landms) numpy
arrays; layout conversions (NHWC, quantisation) are the runner's business. Formats register their
runner with `register_runner`; `load_runner` picks one by file suffix.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from .errors import FeatherfaceError


class Runner(Protocol):
    name: str
    input_size: int | None  # fixed square input size, or None when any multiple of 32 works
    metadata: dict

    def __call__(self, batch_nchw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@dataclass
class TorchRunner:
    model: torch.nn.Module
    name: str = "pytorch"
    input_size: int | None = None
    metadata: dict = field(default_factory=dict)

    def __call__(self, batch_nchw: np.ndarray):
        with torch.inference_mode():
            outs = self.model(torch.from_numpy(np.ascontiguousarray(batch_nchw)))
        return tuple(o.numpy() for o in outs)


_RUNNERS: dict[str, Callable[..., Runner]] = {}


def register_runner(suffix: str):
    def wrap(fn):
        _RUNNERS[suffix] = fn
        return fn
    return wrap


@register_runner(".pth")
def _torch_runner(path: Path, *, model: str | None = None, trust: bool = False, **_) -> Runner:
    from .checkpoint import load_model

    net = load_model(path, model, trust=trust)
    return TorchRunner(net, metadata={"model": net.model_name})


def load_runner(path: str | Path | None, *, model: str | None = None, **kwargs) -> Runner:
    """Runner for an artefact path (or the default checkpoint of `model` when path is None)."""
    if path is None:
        from .checkpoint import load_model

        net = load_model(None, model)
        return TorchRunner(net, metadata={"model": net.model_name})
    path = Path(path)
    suffix = ".pth" if path.suffix in (".pt", ".pth", ".tar", ".ckpt") else path.suffix
    if not path.exists():
        kind = "checkpoint" if suffix == ".pth" else "artefact"
        raise FeatherfaceError(f"{kind} not found: {path}; check the path given to --weights")
    if suffix not in _RUNNERS:
        import featherface_mobile.export  # noqa: F401  (registers the artefact runners)
    if suffix not in _RUNNERS:
        raise FeatherfaceError(f"unsupported artefact type {path.suffix!r} for {path.name}; use .pth, .onnx, .tflite or .mlpackage")
    return _RUNNERS[suffix](path, model=model, **kwargs)


def model_config(runner: Runner):
    """The DetectorConfig of the model a runner runs (from the model or the artefact metadata)."""
    from .models import get_spec

    model = getattr(runner, "model", None)
    if model is not None and hasattr(model, "config"):
        return model.config
    return get_spec(runner.metadata.get("model", "retinaface-mnet025")).config
