"""Which ops an INT8 export keeps in float32: named groups, chosen with `--int8-float GROUP`.

Each group knows how to find its ops in both INT8 routes: in the calibrated TFLite model (names
given to the quantizer's denylist; LiteRT then runs them in float between DEQUANTIZE/QUANTIZE) and
in the float ONNX model (names given to onnxruntime's `nodes_to_exclude`). Whether a group buys
accuracy is measured by `benchmarks/int8_accuracy.py --float-groups`, not assumed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from featherface_mobile.errors import FeatherfaceError


@dataclass(frozen=True)
class FloatGroup:
    name: str
    help: str
    tflite_nodes: Callable[[bytes], list[str]]  # calibrated .tflite bytes -> op names (their output tensors)
    onnx_nodes: Callable[[object], set[str]]  # float onnx.ModelProto -> node names


FLOAT_GROUPS: dict[str, FloatGroup] = {}


def register_float_group(group: FloatGroup) -> FloatGroup:
    FLOAT_GROUPS[group.name] = group
    return group


def get_float_group(name: str) -> FloatGroup:
    try:
        return FLOAT_GROUPS[name]
    except KeyError:
        raise FeatherfaceError(f"unknown --int8-float group {name!r}; choose from: {', '.join(FLOAT_GROUPS)}") from None


def tflite_float_nodes(calibrated: bytes, groups: Iterable[str]) -> list[str]:
    return sorted({n for g in groups for n in get_float_group(g).tflite_nodes(calibrated)})


def onnx_float_nodes(model, groups: Iterable[str]) -> set[str]:
    return {n for g in groups for n in get_float_group(g).onnx_nodes(model)}


def _tflite_heads(calibrated: bytes) -> list[str]:
    from .ranges import head_nodes

    return head_nodes(calibrated)


def _onnx_heads(model) -> set[str]:
    from .onnx_qdq import head_nodes

    return head_nodes(model)


register_float_group(FloatGroup(
    "heads", "the head convs (scores, boxes, landmarks) and every op after them",
    tflite_nodes=_tflite_heads, onnx_nodes=_onnx_heads,
))
