"""Carry the activation ranges a QAT graph learned into the INT8 artefacts (TFLite and ONNX QDQ).

The PT2E graph and the exported artefacts are different graphs (onnx2tf renames, fuses and moves
to NHWC), so tensors are paired by value, not by name: on one reference image, each fake-quant's
input is summarised by its per-channel mean and mean absolute value (`fingerprint`), every
activation of the artefact's float twin likewise, and a pair is made when the two agree to
`RTOL`. The artefact's tensor then takes the learned [min, max] instead of its calibrated one;
tensors with no learned twin (ops the QAT quantizer does not annotate) keep their calibration.

Ranges file (`<model>_qat.ranges.npz`, written by `quantize qat`): the reference input (NCHW), and
per learned range its NCHW shape, fingerprint and [min, max].
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ranges import MIN_RANGE

RTOL = 2e-3  # fingerprints of the same tensor in two graphs agree to float rounding (~1e-5); distinct tensors do not


@dataclass
class LearnedRanges:
    reference: np.ndarray  # (1, 3, S, S) float32, the image both graphs are fingerprinted on
    shapes: list[tuple[int, ...]]  # NCHW shape of each learned tensor
    fingerprints: list[np.ndarray]
    ranges: np.ndarray  # (K, 2) learned [min, max]

    def save(self, path: str | Path) -> None:
        from featherface_mobile.io import atomic_path

        rank = max((len(s) for s in self.shapes), default=0)
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
            np.savez(f, reference=self.reference, ranges=self.ranges,
                     shapes=np.array([list(s) + [0] * (rank - len(s)) for s in self.shapes], np.int64).reshape(-1, rank),
                     ranks=np.array([len(s) for s in self.shapes], np.int64),
                     **{f"fp{i}": fp for i, fp in enumerate(self.fingerprints)})

    @classmethod
    def load(cls, path: str | Path) -> "LearnedRanges":
        from featherface_mobile.errors import FeatherfaceError

        try:
            z = np.load(path)
            shapes = [tuple(int(d) for d in s[:r]) for s, r in zip(z["shapes"], z["ranks"])]
            return cls(z["reference"], shapes, [z[f"fp{i}"] for i in range(len(shapes))], z["ranges"])
        except (OSError, KeyError, ValueError) as e:
            raise FeatherfaceError(f"{path} is not a QAT ranges file ({type(e).__name__}); "
                                   "use the .ranges.npz written by `featherface quantize qat`") from None

    def match(self, shape_nchw: tuple[int, ...], fingerprint_: np.ndarray) -> int | None:
        """Index of the learned range whose tensor this is, or None."""
        best, best_err = None, RTOL
        for i, (s, fp) in enumerate(zip(self.shapes, self.fingerprints)):
            if tuple(s) != tuple(shape_nchw):
                continue
            err = float(np.max(np.abs(fp - fingerprint_)) / (np.max(np.abs(fp)) + 1e-6))
            if err <= best_err:
                best, best_err = i, err
        return best


def load_for_size(path: str | Path, size: int | None) -> LearnedRanges:
    """The ranges file at `path`, refused in one line unless it was learned at `size`."""
    from featherface_mobile.errors import FeatherfaceError

    learned = LearnedRanges.load(path)
    learned_size = int(learned.reference.shape[-1])
    if size is not None and learned_size != size:
        raise FeatherfaceError(f"the QAT ranges in {path} were learned at {learned_size}x{learned_size}; "
                               f"export at --size {learned_size} or run `quantize qat --size {size}`")
    return learned


def fingerprint(values: np.ndarray, channel_axis: int = 1) -> np.ndarray:
    """Per-channel mean and mean |x| of one image's tensor (float64, channels in order)."""
    v = np.moveaxis(np.asarray(values, np.float64), channel_axis, 0).reshape(values.shape[channel_axis], -1)
    return np.concatenate([v.mean(1), np.abs(v).mean(1)])


def nhwc_to_nchw_shape(shape) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    return (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else shape


def collect(qat_model, reference) -> LearnedRanges:
    """The learned per-tensor activation ranges of a PT2E QAT graph, fingerprinted on `reference`.

    Fake quantization and observers are switched off for the reference pass (so the values are the
    float function the artefacts compute) and back on afterwards.
    """
    import torch
    from torchao.quantization.pt2e.fake_quantize import (disable_fake_quant, disable_observer, enable_fake_quant,
                                                         enable_observer)

    acts = [m for m in qat_model.modules() if _is_activation_fake_quant(m)]
    seen: list[tuple[int, tuple[int, ...], np.ndarray]] = []  # a shared fake-quant is seen once per use

    def hook(index):
        def record(mod, inp, out):
            x = inp[0].detach()
            seen.append((index, tuple(x.shape), fingerprint(x.numpy()) if x.dim() > 1 else x.numpy()))
        return record

    hooks = [m.register_forward_hook(hook(i)) for i, m in enumerate(acts)]
    qat_model.apply(disable_fake_quant)
    qat_model.apply(disable_observer)
    try:
        with torch.no_grad():
            qat_model(reference)
    finally:
        for h in hooks:
            h.remove()
        qat_model.apply(enable_fake_quant)
        qat_model.apply(enable_observer)
    ranges = np.array([_range_of(acts[i]) for i, _, _ in seen], np.float64).reshape(-1, 2)
    return LearnedRanges(reference.numpy().astype(np.float32), [s for _, s, _ in seen], [fp for _, _, fp in seen], ranges)


def _is_activation_fake_quant(module) -> bool:
    import torch

    scale = getattr(module, "scale", None)
    return (hasattr(module, "fake_quant_enabled") and isinstance(scale, torch.Tensor) and scale.numel() == 1
            and getattr(module, "qscheme", torch.per_tensor_affine) in (torch.per_tensor_affine, torch.per_tensor_symmetric))


def _range_of(module) -> tuple[float, float]:
    scale, zero = float(module.scale.reshape(-1)[0]), int(module.zero_point.reshape(-1)[0])
    return (module.quant_min - zero) * scale, (module.quant_max - zero) * scale


def apply_to_calibrated_tflite(calibrated: bytes, learned: LearnedRanges) -> tuple[bytes, dict]:
    """A calibrated (float, min/max-annotated) .tflite with the learned ranges on its matched tensors."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from featherface_mobile.export import tflite_graph

    model = tflite_graph.read(calibrated)
    sg = model.subgraphs[0]
    it = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True, num_threads=2,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.ascontiguousarray(learned.reference.transpose(0, 2, 3, 1)))
    it.invoke()
    candidates = tflite_graph.calibrated_activations(model)
    used, matched = set(), 0
    for i in candidates:
        values = it.get_tensor(i)
        if values.ndim not in (2, 4):
            continue
        k = learned.match(nhwc_to_nchw_shape(values.shape), fingerprint(values, values.ndim - 1))
        if k is not None:
            q = sg.tensors[i].quantization
            lo, hi = float(learned.ranges[k, 0]), float(learned.ranges[k, 1])
            q.min, q.max = [lo], [max(hi, lo + MIN_RANGE)]  # a dead tensor's range as calibration floors it
            used.add(k)
            matched += 1
    return tflite_graph.write(model), {"learned": len(learned.ranges), "used": len(used), "tensors": matched,
                                     "of_tensors": len(candidates)}


def onnx_overrides(float_model: str | Path, learned: LearnedRanges) -> tuple[dict, dict]:
    """onnxruntime `TensorQuantOverrides` (rmin/rmax) for the float ONNX model's matched tensors."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(float_model))
    initializers = {t.name for t in model.graph.initializer}
    names = [o for n in model.graph.node for o in n.output if o and o not in initializers]
    outputs = {o.name for o in model.graph.output}
    del model.graph.output[:]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    values = sess.run(None, {sess.get_inputs()[0].name: learned.reference})
    overrides, used = {}, set()
    for name, v in zip([sess.get_inputs()[0].name] + names, [learned.reference] + values):
        if v.dtype != np.float32 or v.ndim not in (2, 4) or name in outputs:
            continue
        k = learned.match(tuple(v.shape), fingerprint(v, 1))
        if k is not None:
            overrides[name] = [{"rmin": np.array(learned.ranges[k, 0], np.float32),
                                "rmax": np.array(learned.ranges[k, 1], np.float32)}]
            used.add(k)
    return overrides, {"learned": len(learned.ranges), "used": len(used), "tensors": len(overrides),
                       "of_tensors": len(names)}
