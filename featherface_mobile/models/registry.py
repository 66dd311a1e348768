"""The model registry: name -> builder + config dataclass, timm style.

Builders are plain functions decorated with `@register_model`; `create_model(name)` builds one,
`list_models()` lists them, and the test suite is parametrized over `list_models()`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from ..errors import FeatherfaceError


@dataclass(frozen=True)
class PriorConfig:
    """Anchor layout shared by every RetinaFace-family head (and written into every artefact)."""

    min_sizes: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
    steps: tuple[int, ...] = (8, 16, 32)
    variance: tuple[float, float] = (0.1, 0.2)
    clip: bool = False


@dataclass(frozen=True)
class DetectorConfig:
    """What every detector shares: anchors, input normalisation and default thresholds."""

    priors: PriorConfig = field(default_factory=PriorConfig)
    mean_bgr: tuple[float, float, float] = (104.0, 117.0, 123.0)
    anchors: int = 2
    score_threshold: float = 0.5
    nms_iou: float = 0.4
    input_size: int = 640


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    config: DetectorConfig
    description: str
    default_weights: str | None = None  # path relative to the shared folder, or "package:<file>"

    def build(self, **overrides) -> nn.Module:
        cfg = dataclasses.replace(self.config, **overrides) if overrides else self.config
        model = self.builder(cfg)
        model.config = cfg
        model.model_name = self.name
        return model


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, config: DetectorConfig, description: str, default_weights: str | None = None):
    """Decorator registering `builder(config) -> nn.Module` under `name`."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name, builder, config, description, default_weights)
        return builder

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise FeatherfaceError(
            f"unknown model {name!r}; choose one of: {', '.join(list_models())}"
        ) from None


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model (random init) in eval mode."""
    return get_spec(name).build(**overrides).eval()
