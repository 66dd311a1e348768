"""Per-layer INT8 error report: which tensors of a quantized artefact lose the most signal.

Use case: an INT8 export fails the verify gate and you want to know where the accuracy goes.
Modelled on onnxruntime's `qdq_loss_debug`: collect activations -> match float vs quantized ->
per-tensor SQNR. The float reference is the artefact's own *float twin*: the same graph with every
INT8 tensor turned into float32 (constants dequantized, QUANTIZE/DEQUANTIZE ops bypassed), so
every tensor matches one to one by index. Two figures per tensor:

- own SQNR (the ranking): the twin's float values of the tensor rounded and clipped on the tensor's
  own INT8 grid, SQNR per channel, median over channels. It is the error this tensor's scale adds,
  not what it inherits, so the tensor that causes a loss ranks first (onnxruntime's pre/post-QDQ
  comparison). Per channel, because TFLite activations have one scale per tensor: a few loud
  channels set the step for all, and a power-weighted SQNR over the whole tensor is dominated by
  the loud channels, which survive; the quiet ones, usually most of them, are what is lost.
- accumulated SQNR: INT8 inference vs the twin at that tensor, i.e. every rounding upstream of it.
  It falls along the network and is lowest at the heads whatever the cause, so it says how much
  signal is left, not where it went.

Per-output errors are also given against the PyTorch model, which includes the weight rounding.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from featherface_mobile.errors import FeatherfaceError


@dataclass
class TensorError:
    index: int
    name: str
    op: str  # the operator that produces the tensor
    shape: list[int]
    own_sqnr_db: float  # median over channels of the SQNR of this tensor's own INT8 step (twin values re-rounded)
    sqnr_db: float  # accumulated: 10 log10(signal power / noise power), INT8 inference vs the twin; higher is better
    cosine: float  # accumulated, INT8 inference vs the twin
    scale: float  # INT8 step of the tensor


@dataclass
class Int8Report:
    artefact: str
    images: int
    tensors: list[TensorError]  # worst (lowest own SQNR) first
    outputs: dict[str, dict[str, float]]  # output -> {sqnr_db vs twin, cosine vs pytorch, ...}
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def table(self, top: int = 15) -> str:
        lines = [f"INT8 error report of {Path(self.artefact).name} on {self.images} images "
                 f"({len(self.tensors)} quantized tensors; worst own SQNR first)",
                 "own: this tensor's INT8 step, median channel; accumulated: INT8 inference vs float twin here",
                 f"{'rank':>4} {'own dB':>7} {'accum dB':>8} {'cosine':>8}  {'op':<18} {'shape':<16} tensor"]
        for i, t in enumerate(self.tensors[:top]):
            shape = "x".join(str(d) for d in t.shape)
            lines.append(f"{i + 1:>4} {t.own_sqnr_db:>7.2f} {t.sqnr_db:>8.2f} {t.cosine:>8.5f}  {t.op:<18} {shape:<16} "
                         f"{t.name[:90]}")
        lines.append("outputs: " + "; ".join(
            f"{k}: " + ", ".join(f"{m} {v:.4g}" for m, v in d.items()) for k, d in self.outputs.items()))
        return "\n".join(lines + self.notes)


def sqnr_db(reference: np.ndarray, quantized: np.ndarray) -> float:
    ref = reference.astype(np.float64).ravel()
    noise = ref - quantized.astype(np.float64).ravel()
    p_noise = float(noise @ noise)
    return float("inf") if p_noise == 0 else 10.0 * np.log10(max(float(ref @ ref), 1e-30) / p_noise)


def own_rounding_error(values: np.ndarray, scale: float, zero: int) -> tuple[np.ndarray, np.ndarray]:
    """(signal power, noise power) per channel (last axis) of `values` rounded and clipped on an INT8 grid."""
    q = np.clip(np.round(values / scale) + zero, -128, 127)
    noise = values - (q - zero) * scale
    flat = values.reshape(-1, values.shape[-1] if values.ndim else 1)
    return (flat * flat).sum(0), (noise.reshape(flat.shape) ** 2).sum(0)


def median_channel_sqnr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """Median over channels of 10 log10(signal / noise); channels without signal (always 0) are left out."""
    live = signal > 0
    if not live.any():
        return float("inf")
    with np.errstate(divide="ignore"):
        return float(np.median(10.0 * np.log10(signal[live] / noise[live])))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def float_twin(model_bytes: bytes) -> tuple[bytes, dict[int, int]]:
    """The INT8 .tflite with every quantized tensor in float32 and QUANTIZE/DEQUANTIZE bypassed.

    Also returns, for each bypassed op's output tensor, the twin tensor that now stands for it.
    """
    from featherface_mobile.export import tflite_graph

    schema = tflite_graph.schema()
    model = tflite_graph.read(model_bytes)
    types = tflite_graph.op_types(model)
    quantized = {schema.TensorType.INT8, schema.TensorType.UINT8, schema.TensorType.INT16, schema.TensorType.INT32}
    originals: dict[int, np.ndarray] = {}  # buffer -> its quantized bytes, once it is turned into float32
    for sg in model.subgraphs:
        for t in sg.tensors:
            q = t.quantization
            if t.type not in quantized or q is None or q.scale is None or len(q.scale) == 0:
                continue
            if tflite_graph.is_constant(model, t):
                if t.buffer in originals:  # a constant shared with a tensor already dequantized: give it its own copy
                    copy = schema.BufferT()
                    copy.data = originals[t.buffer]
                    model.buffers.append(copy)
                    t.buffer = len(model.buffers) - 1
                buf = model.buffers[t.buffer]
                originals[t.buffer] = np.array(buf.data, dtype=np.uint8)
                dtype = {schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8,
                         schema.TensorType.INT16: np.int16, schema.TensorType.INT32: np.int32}[t.type]
                raw = np.frombuffer(originals[t.buffer].tobytes(), dtype=dtype).astype(np.float32)
                if t.shape is not None and len(t.shape) and int(np.prod(t.shape)) == raw.size:
                    raw = raw.reshape(t.shape)
                scale, zero = np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.float32)
                if len(scale) > 1 and raw.ndim > q.quantizedDimension:  # per-channel along quantizedDimension
                    bshape = [1] * raw.ndim
                    bshape[q.quantizedDimension] = -1
                    scale, zero = scale.reshape(bshape), zero.reshape(bshape)
                buf.data = np.frombuffer(((raw - zero) * scale).astype(np.float32).tobytes(), np.uint8)
            t.type, t.quantization = schema.TensorType.FLOAT32, None
        # Bypass QUANTIZE/DEQUANTIZE (float -> float now): consumers read the op's input instead.
        alias: dict[int, int] = {}
        kept = []
        for op in sg.operators:
            if types[op.opcodeIndex] in ("QUANTIZE", "DEQUANTIZE"):
                alias[op.outputs[0]] = op.inputs[0]
            else:
                kept.append(op)

        def root(i: int) -> int:
            while i in alias:
                i = alias[i]
            return i
        for op in kept:
            op.inputs = [root(i) if i >= 0 else i for i in op.inputs]
        sg.outputs = [root(i) for i in sg.outputs]
        sg.operators = kept
    return tflite_graph.write(model), {k: root(k) for k in alias}


def _producers(model_bytes: bytes) -> dict[int, str]:
    from featherface_mobile.export import tflite_graph

    model = tflite_graph.read(model_bytes)
    types = tflite_graph.op_types(model)
    return {o: types[op.opcodeIndex] for op in model.subgraphs[0].operators for o in op.outputs}


def tflite_report(artefact: str | Path, weights: str | Path | None = None, *, images: int = 8,
                  image_dir: Path | None = None, split: str = "train") -> Int8Report:
    """SQNR of every quantized tensor of an INT8 .tflite vs its float twin, on real images."""
    from ai_edge_litert.interpreter import Interpreter

    from featherface_mobile.checkpoint import load_model
    from featherface_mobile.export.common import OUTPUT_NAMES, model_inputs, sample_images, torch_outputs
    from featherface_mobile.export.tflite_format import TFLiteRunner, read_metadata

    artefact = Path(artefact)
    data = artefact.read_bytes()
    meta = read_metadata(artefact)
    from ai_edge_litert.interpreter import OpResolverType

    twin, alias = float_twin(data)
    # Without delegates, so every intermediate tensor stays readable; every tensor then has its own
    # memory, so the two interpreters do not coexist: the INT8 one runs on every image first and keeps
    # only its INT8 tensors.
    plain = dict(experimental_preserve_all_tensors=True, num_threads=2,
                 experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    q = Interpreter(model_content=data, **plain)
    q.allocate_tensors()
    details = {d["index"]: d for d in q.get_tensor_details()}
    if not any(d["dtype"] == np.int8 for d in details.values()):
        raise FeatherfaceError(f"{artefact.name} has no INT8 tensors; the report is for INT8 artefacts (export with --int8)")
    producers = _producers(data)
    candidates = [i for i, d in details.items() if d["dtype"] == np.int8 and i in producers]
    net = load_model(weights, meta.get("model")) if (weights or meta.get("model")) else None
    size = int(q.get_input_details()[0]["shape"][1])
    batches = [np.ascontiguousarray(b.transpose(0, 2, 3, 1)) for b in model_inputs(
        sample_images(images, image_dir, split=split), size, (net.config.mean_bgr if net else meta["mean"]))]
    runner = TFLiteRunner.__new__(TFLiteRunner)  # reuse the output matching/dequantization of the runner

    def run(interpreter, x: np.ndarray) -> list[np.ndarray]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        runner.interpreter = interpreter
        return [interpreter.get_tensor(o["index"]).astype(np.float32) for o in TFLiteRunner._match_outputs(runner)]

    out_q, int8_values = [], []
    for x in batches:
        out_q.append(run(q, x))
        int8_values.append({i: q.get_tensor(i).copy() for i in candidates})
    del q, runner.interpreter
    f = Interpreter(model_content=twin, **plain)
    f.allocate_tensors()
    acc: dict[int, list[float]] = {i: [0.0, 0.0, 0.0, 0.0] for i in candidates}  # ref@ref, noise@noise, ref@got, got@got
    own: dict[int, list[np.ndarray]] = {}  # per-channel signal and noise power of the tensor's own rounding
    out_ref, out_pt = [], []
    for x, stored in zip(batches, int8_values):
        out_ref.append(run(f, x))
        for i in candidates:
            scale, zero = details[i]["quantization"]
            got = (stored.pop(i).astype(np.float64) - zero) * scale
            ref = f.get_tensor(alias.get(i, i)).astype(np.float64)
            a = acc[i]
            a[0] += float((ref * ref).sum())
            a[1] += float(((ref - got) ** 2).sum())
            a[2] += float((ref * got).sum())
            a[3] += float((got * got).sum())
            sig, noise = own_rounding_error(ref, scale, zero)
            own[i] = [sig, noise] if i not in own else [own[i][0] + sig, own[i][1] + noise]
        if net is not None:
            out_pt.append(torch_outputs(net, np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    tensors = []
    for i, (rr, nn_, rg, gg) in acc.items():
        d = details[i]
        tensors.append(TensorError(i, d["name"], producers[i], [int(s) for s in d["shape"]],
                                   median_channel_sqnr_db(*own[i]),
                                   float("inf") if nn_ == 0 else 10 * np.log10(max(rr, 1e-30) / nn_),
                                   rg / max(np.sqrt(rr * gg), 1e-30), float(d["quantization"][0])))
    tensors.sort(key=lambda t: t.own_sqnr_db)
    outputs = {}
    for k, name in enumerate(OUTPUT_NAMES):
        ref = np.concatenate([o[k].ravel() for o in out_ref])
        got = np.concatenate([o[k].ravel() for o in out_q])
        outputs[name] = {"sqnr_db_vs_twin": sqnr_db(ref, got), "cosine_vs_twin": cosine(ref, got)}
        if out_pt:
            pt = np.concatenate([o[k].ravel() for o in out_pt])
            outputs[name].update(sqnr_db_vs_pytorch=sqnr_db(pt, got), cosine_vs_pytorch=cosine(pt, got))
    notes = [f"reference: float twin of the artefact (INT8 weights, float activations); images: {split} split",
             "a concatenation's inputs share its INT8 scale: a loud branch lowers its siblings' own SQNR too"]
    return Int8Report(str(artefact), len(batches), tensors, outputs, notes)


def int8_report(artefact: str | Path, weights: str | Path | None = None, *, images: int = 8,
                image_dir: Path | None = None, plot: str | Path | None = None, json_path: str | Path | None = None) -> Int8Report:
    """Per-tensor INT8 error report of an artefact (.tflite), optionally with a plot and a JSON file."""
    artefact = Path(artefact)
    if not artefact.is_file():
        raise FeatherfaceError(f"artefact not found: {artefact}; pass an INT8 .tflite produced by featherface export --int8")
    if artefact.suffix != ".tflite":
        raise FeatherfaceError(f"{artefact.name}: the INT8 report reads .tflite artefacts; export with --format tflite --int8")
    report = tflite_report(artefact, weights, images=images, image_dir=image_dir)
    if plot:
        plot_report(report, plot)
    if json_path:
        from featherface_mobile.io import write_json

        write_json(Path(json_path), report.as_dict())
    return report


def plot_report(report: Int8Report, path: str | Path, top: int = 30) -> None:
    """Horizontal bars: own SQNR of the `top` worst tensors, worst at the top, with their accumulated SQNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from featherface_mobile.io import atomic_path

    worst = report.tensors[:top]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(worst) + 1.2))
    labels = [f"{t.op} #{t.index} {t.name[-38:]}" for t in worst]
    rows = np.arange(len(worst))
    ax.barh(rows - 0.2, [t.own_sqnr_db for t in worst], height=0.4, color="tab:red", label="own (median channel)")
    ax.barh(rows + 0.2, [t.sqnr_db for t in worst], height=0.4, color="tab:gray", label="accumulated")
    ax.set_yticks(rows, labels, fontsize=7)
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel("SQNR (dB) vs the float twin; lower is worse")
    ax.set_title(f"{Path(report.artefact).name}: {top} worst of {len(report.tensors)} tensors")
    ax.grid(axis="x", alpha=0.3)
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)

