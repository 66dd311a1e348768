"""Activation range setting for TFLite INT8: MSE-optimal clipping written into a calibrated model.

TFLiteConverter's calibration keeps the min/max seen on the calibration images; one outlier pixel
then sets the INT8 step of a whole high-resolution tensor. `mse_ranges` re-runs the calibrated
(still float) model, samples every tensor's values and shrinks its [min, max] by the factor that
minimises clipping + rounding error. Tensors that feed the outputs directly (the head convs and
everything after them) keep min/max, as clipping scores costs recall.
"""
from __future__ import annotations

import numpy as np

from featherface_mobile.export import tflite_graph

CLIP_FACTORS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
# Narrowest activation range kept. A tensor that is constant on every calibration image (a dead
# channel's FC output: V2-Ultra's gates) would get a scale of ~1e-8, and XNNPACK refuses an INT8
# op whose input x weight / output scale ratio is above 256; the whole graph then runs on
# LiteRT's slow reference kernels.
MIN_RANGE = 1e-2
_PASS_THROUGH = {"RESHAPE", "TRANSPOSE", "CONCATENATION", "SOFTMAX", "DEQUANTIZE", "QUANTIZE"}


def best_clip(values: np.ndarray, lo: float, hi: float, factors=CLIP_FACTORS) -> float:
    """The factor a in `factors` minimising the INT8 error of values quantized on [a*lo, a*hi]."""
    best = (np.inf, 1.0)
    for a in factors:
        low, high = min(lo * a, 0.0), max(hi * a, 0.0)
        step = max((high - low) / 255.0, 1e-12)
        q = np.round((np.clip(values, low, high) - low) / step) * step + low
        err = float(np.mean((q - values) ** 2))
        if err < best[0]:
            best = (err, a)
    return best[1]


def _head_tensors(model) -> set[int]:
    """Tensors from the last convs onward: outputs, and walking back through reshape/concat/softmax."""
    sg = model.subgraphs[0]
    types = tflite_graph.op_types(model)
    producer = {o: op for op in sg.operators for o in op.outputs}
    keep: set[int] = set()
    stack = list(sg.outputs)
    while stack:
        t = stack.pop()
        if t in keep or t < 0:
            continue
        keep.add(t)
        op = producer.get(t)
        if op is not None and types[op.opcodeIndex] in _PASS_THROUGH:
            stack.extend(op.inputs)
    return keep


def head_nodes(calibrated: bytes) -> list[str]:
    """Names (output tensors) of the head convs and every op after them: what `--int8-float heads` keeps float."""
    model = tflite_graph.read(calibrated)
    sg = model.subgraphs[0]
    head = _head_tensors(model)
    return sorted({sg.tensors[op.outputs[0]].name.decode() for op in sg.operators if op.outputs[0] in head})


def mse_ranges(calibrated: bytes, images: np.ndarray, *, samples_per_image: int = 20000, seed: int = 0) -> tuple[bytes, dict]:
    """Calibrated .tflite bytes with MSE-clipped min/max on every non-head activation; and a summary."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model = tflite_graph.read(calibrated)
    sg = model.subgraphs[0]
    head = _head_tensors(model)
    targets = [i for i in tflite_graph.calibrated_activations(model) if i not in head]
    it = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True, num_threads=2,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    rng = np.random.default_rng(seed)
    pools: dict[int, list[np.ndarray]] = {i: [] for i in targets}
    for x in images:
        it.set_tensor(inp, x[None].astype(np.float32))
        it.invoke()
        for i in targets:
            v = it.get_tensor(i).ravel()
            pools[i].append(v[rng.integers(0, v.size, min(samples_per_image, v.size))])
    factors = {}
    for i in targets:
        q = sg.tensors[i].quantization
        a = best_clip(np.concatenate(pools[i]).astype(np.float64), float(q.min[0]), float(q.max[0]))
        if a < 1.0:
            q.min, q.max = [float(q.min[0]) * a], [float(q.max[0]) * a]
        factors[i] = a
    widened = widen_degenerate(model)
    clipped = [a for a in factors.values() if a < 1.0]
    return tflite_graph.write(model), {"tensors": len(targets), "clipped": len(clipped),
                                       "median_factor": float(np.median(clipped)) if clipped else 1.0, "widened": widened}


def widen_degenerate(model, floor: float = MIN_RANGE) -> int:
    """Give every activation whose calibrated [min, max] is narrower than `floor` that width; the count."""
    n = 0
    tensors = model.subgraphs[0].tensors
    for i in tflite_graph.calibrated_activations(model):
        q = tensors[i].quantization
        lo, hi = float(q.min[0]), float(q.max[0])
        if hi - lo < floor:
            q.min, q.max = [min(lo, 0.0)], [max(min(lo, 0.0) + floor, hi)]
            n += 1
    return n
