"""Which ops an INT8 export keeps in float32: named groups, chosen with `--int8-float GROUP`.

Each group knows how to find its ops in both INT8 routes: in the calibrated TFLite model (names
given to the quantizer's denylist; LiteRT then runs them in float between DEQUANTIZE/QUANTIZE) and
in the float ONNX model (names given to onnxruntime's `nodes_to_exclude`), and in the PT2E graph
that QAT trains (nodes left without fake quantization, so QAT simulates the export it feeds). Whether a group buys
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
    torch_nodes: Callable[[object], set[str]]  # exported torch.fx.GraphModule (node meta "val") -> node names
    # eager convs in execution order, (module name, output height), and the input side -> the names in the group
    # (AdaRound leaves those on their float weights)
    conv_modules: Callable[[list[tuple[str, int]], int], set[str]] = lambda convs, side: set()


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


def torch_float_nodes(graph_module, groups: Iterable[str]) -> set[str]:
    return {n for g in groups for n in get_float_group(g).torch_nodes(graph_module)}


def conv_float_modules(convs: list[tuple[str, int]], side: int, groups: Iterable[str]) -> set[str]:
    return {n for g in groups for n in get_float_group(g).conv_modules(convs, side)}


def _tflite_heads(calibrated: bytes) -> list[str]:
    from .ranges import head_nodes

    return head_nodes(calibrated)


def _onnx_heads(model) -> set[str]:
    from .onnx_qdq import head_nodes

    return head_nodes(model)


def _fx_ops(graph_module):
    """(name, input names, output names, output height; in graph order) of the compute nodes, and the input side."""
    nodes = [n for n in graph_module.graph.nodes if n.op == "call_function"]
    side = next(n for n in graph_module.graph.nodes if n.op == "placeholder").meta["val"].shape[2]  # NCHW
    ops = [(n.name, {a.name for a in n.all_input_nodes}, {n.name},
            _rank4_height(getattr(n.meta.get("val"), "shape", None), 2)) for n in nodes]
    return ops, side


def _torch_heads(graph_module) -> set[str]:
    """The nodes of the head modules (ClassHead, BboxHead, LandmarkHead) and every node downstream of them."""
    picked: set[str] = set()
    for n in graph_module.graph.nodes:
        stack = [path for path, _ in n.meta.get("nn_module_stack", {}).values()]
        if n.op == "call_function" and (any(p.split(".")[0].endswith("Head") for p in stack)
                                        or picked.intersection(a.name for a in n.all_input_nodes)):
            picked.add(n.name)
    return picked


register_float_group(FloatGroup(
    "heads", "the head convs (scores, boxes, landmarks) and every op after them",
    tflite_nodes=_tflite_heads, onnx_nodes=_onnx_heads, torch_nodes=_torch_heads,
    conv_modules=lambda convs, side: {n for n, _ in convs if any(p.endswith("Head") for p in n.split("."))},
))


def _fine_ops(ops, side: int, stride: int, upstream_only: bool) -> list[str]:
    """Names of the ops (name, input names, output names, output height; in graph order) whose output is at
    `stride` or finer; with `upstream_only`, also depending on no op at a coarser stride (the backbone's
    first stages, not the detection levels that merge coarser features back in)."""
    coarse: set[str] = set()
    picked = []
    for name, inputs, outputs, height in ops:
        if height * stride >= side and not (upstream_only and coarse.intersection(inputs)):
            picked.append(name)
        else:
            coarse.update(outputs)
    return picked


def _tflite_up_to_stride(stride: int, upstream_only: bool = False) -> Callable[[bytes], list[str]]:
    def nodes(calibrated: bytes) -> list[str]:
        from featherface_mobile.export import tflite_graph

        model = tflite_graph.read(calibrated)
        sg = model.subgraphs[0]
        side = sg.tensors[sg.inputs[0]].shape[1]  # NHWC
        ops = [(sg.tensors[op.outputs[0]].name.decode(), {int(i) for i in op.inputs}, {int(o) for o in op.outputs},
                _rank4_height(sg.tensors[op.outputs[0]].shape, 1)) for op in sg.operators]
        return _fine_ops(ops, side, stride, upstream_only)
    return nodes


def _onnx_up_to_stride(stride: int, upstream_only: bool = False) -> Callable[[object], set[str]]:
    def nodes(model) -> set[str]:
        shapes = _onnx_shapes(model)
        side = shapes[model.graph.input[0].name][2]  # NCHW
        ops = [(n.name, set(n.input), set(n.output), _rank4_height(shapes.get(n.output[0]), 2))
               for n in model.graph.node]
        return set(_fine_ops(ops, side, stride, upstream_only))
    return nodes


def _onnx_shapes(model) -> dict[str, list[int]]:
    """Every tensor's shape in `model` (ONNX shape inference; 0 for an unknown dimension)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}


def _torch_up_to_stride(stride: int, upstream_only: bool = False) -> Callable[[object], set[str]]:
    def nodes(graph_module) -> set[str]:
        ops, side = _fx_ops(graph_module)
        return set(_fine_ops(ops, side, stride, upstream_only))
    return nodes


def _modules_up_to_stride(stride: int, upstream_only: bool = False) -> Callable[[list[tuple[str, int]], int], set[str]]:
    """Eager convs have no input names: each is read as fed by the conv called before it, so "upstream only"
    becomes "called before the first coarser conv" (the backbone's first stages run before anything coarser exists)."""
    def names(convs: list[tuple[str, int]], side: int) -> set[str]:
        previous = [""] + [name for name, _ in convs]
        return set(_fine_ops([(name, {prev}, {name}, height) for prev, (name, height) in zip(previous, convs)],
                             side, stride, upstream_only))
    return names


def _rank4_height(shape, axis: int) -> int:
    return int(shape[axis]) if shape is not None and len(shape) == 4 else 0


for _stride in (2, 4, 8):
    register_float_group(FloatGroup(
        f"stride{_stride}", f"every op whose output is at stride {_stride} or finer (the thin high-resolution "
        "layers: most of the INT8 error of MobileNet-0.25 backbones, and much of their INT8 time)",
        tflite_nodes=_tflite_up_to_stride(_stride), onnx_nodes=_onnx_up_to_stride(_stride),
        torch_nodes=_torch_up_to_stride(_stride), conv_modules=_modules_up_to_stride(_stride),
    ))
register_float_group(FloatGroup(
    "backbone8", "every op at stride 8 or finer that depends on nothing coarser: the stem and the first stage "
    "of the backbone, not the stride-8 detection level",
    tflite_nodes=_tflite_up_to_stride(8, upstream_only=True), onnx_nodes=_onnx_up_to_stride(8, upstream_only=True),
    torch_nodes=_torch_up_to_stride(8, upstream_only=True), conv_modules=_modules_up_to_stride(8, upstream_only=True),
))


def _is_sampling(shape) -> bool:
    """A rank-1/2 tensor whose first dimension is not the batch: the portable deformable sampling works on
    (taps x positions, channels) tables by construction (models/deform.py); CBAM's (1, C) vectors are not it."""
    return shape is not None and 1 <= len(shape) <= 2 and int(shape[0]) > 1


def _tflite_sampling(calibrated: bytes) -> list[str]:
    from featherface_mobile.export import tflite_graph

    sg = tflite_graph.read(calibrated).subgraphs[0]
    return [sg.tensors[op.outputs[0]].name.decode() for op in sg.operators
            if _is_sampling(sg.tensors[op.outputs[0]].shape)]


def _onnx_sampling(model) -> set[str]:
    shapes = _onnx_shapes(model)
    return {n.name for n in model.graph.node if _is_sampling(shapes.get(n.output[0]))}


def _torch_sampling(graph_module) -> set[str]:
    """QAT trains the grid_sample form (5-D tensors, so no shape rule): the nodes of the deformable convs' own
    scope except their convs and the modulator's 2 * sigmoid, i.e. what the export's sampling ops compute."""
    picked: set[str] = set()
    for n in graph_module.graph.nodes:
        scope = list(n.meta.get("nn_module_stack", {}).values())
        if n.op != "call_function" or not scope or not str(scope[-1][1]).endswith("ModulatedDeformConv2d"):
            continue
        target = str(n.target)
        if "conv" in target or "sigmoid" in target or any("sigmoid" in str(a.target) for a in n.all_input_nodes):
            continue
        picked.add(n.name)
    return picked


register_float_group(FloatGroup(
    "deform", "the sampling of the deformable convs (FeatherFace V1's SSH): gathers, bilinear weights and their "
    "products, not the offset and output convs; no ops in models without deformable convs",
    tflite_nodes=_tflite_sampling, onnx_nodes=_onnx_sampling, torch_nodes=_torch_sampling,
))
