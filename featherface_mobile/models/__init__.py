"""Detector architectures; importing this package registers them all."""
from . import featherface_v1, featherface_v2, retinaface  # noqa: F401  (registration side effects)
from .registry import DetectorConfig, PriorConfig, create_model, get_spec, list_models, register_model

__all__ = ["DetectorConfig", "PriorConfig", "create_model", "get_spec", "list_models", "register_model"]
