"""Activation range setting for TFLite INT8: MSE-optimal clipping written into a calibrated model.

TFLiteConverter's calibration keeps the min/max seen on the calibration images; one outlier pixel
then sets the INT8 step of a whole high-resolution tensor. `mse_ranges` re-runs the calibrated
(still float) model, samples every tensor's values and shrinks its [min, max] by the factor that
minimises clipping + rounding error. Tensors that feed the outputs directly (the head convs and
everything after them) keep min/max, as clipping scores costs recall.
"""
from __future__ import annotations

import numpy as np

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


def _head_tensors(model, schema, names) -> set[int]:
    """Tensors from the last convs onward: outputs, and walking back through reshape/concat/softmax."""
    sg = model.subgraphs[0]
    codes = [c.builtinCode if c.builtinCode else c.deprecatedBuiltinCode for c in model.operatorCodes]
    producer = {o: op for op in sg.operators for o in op.outputs}
    keep: set[int] = set()
    stack = list(sg.outputs)
    while stack:
        t = stack.pop()
        if t in keep or t < 0:
            continue
        keep.add(t)
        op = producer.get(t)
        if op is not None and names.get(codes[op.opcodeIndex]) in _PASS_THROUGH:
            stack.extend(op.inputs)
    return keep


def mse_ranges(calibrated: bytes, images: np.ndarray, *, samples_per_image: int = 20000, seed: int = 0) -> tuple[bytes, dict]:
    """Calibrated .tflite bytes with MSE-clipped min/max on every non-head activation; and a summary."""
    import flatbuffers
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from .report import _op_names, _schema

    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(calibrated, 0))
    sg = model.subgraphs[0]
    head = _head_tensors(model, schema, _op_names(schema))
    targets = [i for i, t in enumerate(sg.tensors)
               if i not in head and t.quantization is not None and t.quantization.min is not None
               and len(t.quantization.min) == 1 and (model.buffers[t.buffer].data is None or not len(model.buffers[t.buffer].data))]
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
    widened = widen_degenerate(sg.tensors, range(len(sg.tensors)), model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    clipped = [a for a in factors.values() if a < 1.0]
    return bytes(builder.Output()), {"tensors": len(targets), "clipped": len(clipped),
                                     "median_factor": float(np.median(clipped)) if clipped else 1.0, "widened": widened}


def widen_degenerate(tensors, indices, model, floor: float = MIN_RANGE) -> int:
    """Give every activation whose calibrated [min, max] is narrower than `floor` that width; the count."""
    n = 0
    for i in indices:
        t = tensors[i]
        q = t.quantization
        if q is None or q.min is None or len(q.min) != 1 or (model.buffers[t.buffer].data is not None
                                                              and len(model.buffers[t.buffer].data)):
            continue
        lo, hi = float(q.min[0]), float(q.max[0])
        if hi - lo < floor:
            q.min, q.max = [min(lo, 0.0)], [max(min(lo, 0.0) + floor, hi)]
            n += 1
    return n
