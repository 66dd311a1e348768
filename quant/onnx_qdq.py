"""ONNX INT8 in QDQ form: onnxruntime's static quantizer on an exported float ONNX model.

Use case: `featherface export --format onnx --int8`. The steps compose: a calibration reader over
runtime-preprocessed images -> the nodes kept in float (the deformable convs' gather-index and
bilinear-weight math, the output tail after the head convs) -> `quantize_static` (QDQ,
per-channel int8 weights) -> the float model's metadata_props copied onto the result.
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

# Ops whose outputs end a float region: from here on the graph is ordinary conv/matmul arithmetic.
_LINEAR_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})


@dataclass(frozen=True)
class QdqSettings:
    """How the ONNX model is quantized; stored in the artefact metadata as `quantization`."""

    activations: str = "uint8"  # "uint8" (asymmetric, onnxruntime CPU's fast U8S8 path) or "int8"
    weights: str = "int8"
    per_channel: bool = True
    calibration: str = "minmax"  # "minmax", "entropy" or "percentile"
    float_index_math: bool = True  # deformable-conv sampling coordinates, gather indices, bilinear weights
    float_output_tail: bool = True  # transpose/reshape/concat/softmax after the head convs
    float_groups: tuple[str, ...] = ()  # quant.float_ops groups kept float (`--int8-float`)

    def as_dict(self) -> dict:
        return dict(asdict(self), tool="onnxruntime.quantization.quantize_static", format="QDQ")


class BatchReader:
    """`CalibrationDataReader` over NCHW float32 batches (preprocessed exactly as at run time)."""

    def __init__(self, batches: Sequence[np.ndarray], input_name: str = "input") -> None:
        self.batches = [np.ascontiguousarray(b, dtype=np.float32) for b in batches]
        self.input_name = input_name
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self.batches):
            return None
        self._next += 1
        return {self.input_name: self.batches[self._next - 1]}

    def rewind(self) -> None:
        self._next = 0

    def __len__(self) -> int:
        return len(self.batches)


def _producers(model) -> dict[str, object]:
    return {out: node for node in model.graph.node for out in node.output}


def _consumers(model) -> dict[str, list]:
    users: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _walk_back(model, tensors: Iterable[str], stop: frozenset[str]) -> set[str]:
    """Names of the nodes producing `tensors`, transitively, not crossing nodes of type `stop`."""
    producers = _producers(model)
    seen: set[str] = set()
    todo = list(tensors)
    while todo:
        node = producers.get(todo.pop())
        if node is None or node.name in seen or node.op_type in stop:
            continue
        seen.add(node.name)
        todo.extend(node.input)
    return seen


def _walk_forward(model, nodes: Iterable, stop: frozenset[str]) -> set[str]:
    """Names of `nodes` and every node they feed, transitively, not entering nodes of type `stop`."""
    consumers = _consumers(model)
    seen: set[str] = set()
    todo = list(nodes)
    while todo:
        node = todo.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        for out in node.output:
            todo.extend(n for n in consumers.get(out, []) if n.op_type not in stop)
    return seen


def index_math_nodes(model) -> set[str]:
    """Nodes of the portable deformable convs that must stay float.

    Sampling coordinates reach ~80 at 640 input: on an 8-bit grid they move by ~0.3 px and the
    gathers read the wrong pixels. Kept float: everything feeding a Gather's indices (back to the
    offset conv) and everything downstream of a Floor up to the next Gather/conv/matmul (fractions,
    bilinear weights, their products with the gathered values, the modulation).
    """
    initializers = {t.name for t in model.graph.initializer}
    indices = [n.input[1] for n in model.graph.node if n.op_type == "Gather" and n.input[1] not in initializers]
    floors = [n for n in model.graph.node if n.op_type == "Floor"]
    return _walk_back(model, indices, _LINEAR_OPS) | _walk_forward(model, floors, _LINEAR_OPS | {"Gather"})


def output_tail_nodes(model) -> set[str]:
    """Nodes between the last head convs and the graph outputs (transpose, reshape, concat, softmax)."""
    return _walk_back(model, [o.name for o in model.graph.output], _LINEAR_OPS)


def head_nodes(model) -> set[str]:
    """The head convs (the convs feeding the output tail) and the output tail."""
    tail = output_tail_nodes(model)
    producers = _producers(model)
    inputs = {i for n in model.graph.node if n.name in tail for i in n.input}
    heads = {producers[i].name for i in inputs if i in producers and producers[i].op_type in _LINEAR_OPS}
    return tail | heads


def float_nodes(model, settings: QdqSettings) -> list[str]:
    """Names of the nodes `quantize_static` must leave in float32."""
    keep: set[str] = set()
    if settings.float_index_math:
        keep |= index_math_nodes(model)
    if settings.float_output_tail:
        keep |= output_tail_nodes(model)
    if settings.float_groups:
        from .float_ops import onnx_float_nodes

        keep |= onnx_float_nodes(model, settings.float_groups)
    return sorted(keep)


def qdq_summary(model) -> dict[str, int]:
    """Counts that show a model really is QDQ INT8: Q/DQ nodes and 8-bit weight initializers."""
    from onnx import TensorProto

    ops = [n.op_type for n in model.graph.node]
    eight_bit = {TensorProto.INT8, TensorProto.UINT8}
    return {
        "quantize_nodes": ops.count("QuantizeLinear"),
        "dequantize_nodes": ops.count("DequantizeLinear"),
        "int8_initializers": sum(t.data_type == TensorProto.INT8 and len(t.dims) > 1 for t in model.graph.initializer),
        "eight_bit_initializers": sum(t.data_type in eight_bit for t in model.graph.initializer),
        "nodes": len(ops),
    }


def quantize_onnx_qdq(
    float_model: str | Path,
    out: str | Path,
    calibration: Sequence[np.ndarray],
    *,
    settings: QdqSettings = QdqSettings(),
    overrides: dict | None = None,
) -> dict:
    """Write the QDQ INT8 version of `float_model` to `out` (atomically); return its facts.

    `calibration`: NCHW float32 batches of one image, preprocessed exactly as at run time.
    The float model's metadata_props (the artefact metadata) are carried over unchanged.
    `overrides`: onnxruntime TensorQuantOverrides (e.g. QAT-learned rmin/rmax, `quant.learned`).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from featherface_mobile.io import atomic_path

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    source = onnx.load(str(float_model))
    keep_float = float_nodes(source, settings)
    # No CalibMaxIntermediateOutputs: in onnxruntime 1.23 MinMax it drops the collected ranges
    # instead of merging them (only the last few images would count). MinMax keeps only per-tensor
    # min/max per image, so memory stays small without it.
    extra = {"ActivationSymmetric": settings.activations == "int8", "WeightSymmetric": True,
             **({"TensorQuantOverrides": overrides} if overrides else {})}
    with tempfile.TemporaryDirectory(prefix="ff-qdq-") as tmp, atomic_path(out) as part:
        raw = Path(tmp) / "qdq.onnx"
        quantize_static(
            str(float_model), str(raw), BatchReader(calibration),
            quant_format=QuantFormat.QDQ, per_channel=settings.per_channel,
            activation_type=types[settings.activations], weight_type=types[settings.weights],
            calibrate_method=methods[settings.calibration], nodes_to_exclude=keep_float, extra_options=extra,
        )
        proto = onnx.load(str(raw))
        del proto.metadata_props[:]
        proto.metadata_props.extend(source.metadata_props)
        proto.producer_name = source.producer_name
        onnx.save(proto, str(part))
    return dict(qdq_summary(proto), float_nodes=len(keep_float), calibration_images=len(calibration))
