"""Core ML: traced export to an ML program (.mlpackage), FP16 by default, INT8 weights, optional image input.

The runner predicts with Core ML on macOS; elsewhere it evaluates the saved program's MIL ops with
`mil_eval` (float32 math, fp16 activations emulated), which is what the verify gate judges on Linux.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from featherface_mobile.errors import FeatherfaceError

from .common import OUTPUT_NAMES, export_copy
from .formats import ExportOptions, FormatSpec, register_format

METADATA_KEY = "featherface"
DEPLOYMENT_TARGET = "iOS16"
# Ops that never take part in integer index arithmetic: the fp32 region stops at them.
_INDEX_MATH_BOUNDARY = frozenset({"conv", "linear", "matmul", "gather", "batch_norm", "const"})


class KeepIndexMathFp32:
    """FP16 op selector that keeps gather-index arithmetic (and what it feeds, up to the next
    conv/linear/gather) in float32.

    The portable deformable conv computes gather indices as y * W + x in float. In FP16 that is exact
    only below 2048: at 640 input an 80x80 map has indices up to 6399, which FP16 rounds to a
    neighbour (or past the end), and the bilinear weights lose most of their bits. Keeping that small
    region in fp32 costs little; everything else (convs, attention, heads) stays FP16.
    """

    def __init__(self) -> None:
        self.fp32_ops: set[str] | None = None

    def _index_region(self, block) -> set[str]:
        region: set[str] = set()
        stack = [o.inputs["indices"].op for o in block.operations if o.op_type == "gather"]
        while stack:  # upstream of every gather's indices
            o = stack.pop()
            if o is None or o.op_type in _INDEX_MATH_BOUNDARY or o.name in region:
                continue
            region.add(o.name)
            for v in o.inputs.values():
                stack.extend(x.op for x in (v if isinstance(v, (tuple, list)) else (v,)))
        stack = [o for o in block.operations if o.name in region]
        while stack:  # and downstream of that, up to the next heavy op
            o = stack.pop()
            for child in (c for out in o.outputs for c in out.child_ops):
                if child.op_type not in _INDEX_MATH_BOUNDARY and child.name not in region:
                    region.add(child.name)
                    stack.append(child)
        return region

    def __call__(self, op) -> bool:
        """True: cast this op to FP16."""
        if self.fp32_ops is None:
            block = op.enclosing_block
            while block.outer_op is not None:
                block = block.outer_op.enclosing_block
            self.fp32_ops = self._index_region(block)
        return op.name not in self.fp32_ops


# Ops whose constant inputs are weights worth storing as INT8.
INT8_WEIGHT_OPS = ("conv", "linear")
# coremltools' default: tensors of at most this many elements (biases, the 16-channel modulator convs,
# small 1x1 convs) stay FP16, where INT8 would save a few hundred bytes each.
INT8_MIN_ELEMENTS = 2048


def int8_weight_config():
    """coremltools OptimizationConfig for --int8: per-output-channel symmetric INT8 conv/linear weights.

    Only constants consumed by conv/linear ops are quantized (`op_type_configs`, no global config).
    A global config quantizes *every* constant above the size threshold, including the deformable
    convs' integer sampling grid: at 640, V1's 80x80 level has a (1, 6400) row-index vector (-1..78)
    that became INT8 with one scale of 0.31, so rows came back as 1.86, 3.10, ... and the truncated
    gather indices pointed at other pixels (verify F1 0.300). Weights only: F1 1.000.

    The offset/modulator convs of the deformable convs stay INT8: keeping them FP16 was measured
    (V1 at 640, 2 eval images: mean |loc error| 0.03377 -> 0.03371, F1 1.000 either way) and costs
    104 KB (1194 -> 1300 KB). Symmetric rather than affine: cosine 0.99928 vs 0.99897 (loc), no zero points.
    """
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig

    weights = OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                      weight_threshold=INT8_MIN_ELEMENTS)
    return OptimizationConfig(op_type_configs={op: weights for op in INT8_WEIGHT_OPS})


def convert_to_mlmodel(model: nn.Module, size: int, *, precision: str = "fp16", image_input: bool = False):
    """The ct.models.MLModel of `model` at a fixed size x size input (precision: fp32, fp16 or int8)."""
    import coremltools as ct

    if precision not in ("fp32", "fp16", "int8"):
        raise FeatherfaceError(f"Core ML precision {precision!r} is not one of fp32, fp16, int8")
    net = export_copy(model)
    with torch.inference_mode():
        traced = torch.jit.trace(net, torch.zeros(1, 3, size, size), check_trace=False)
    shape = (1, 3, size, size)
    if image_input:
        mean = [float(m) for m in model.config.mean_bgr]
        # Core ML hands the image to the model in BGR order, then applies scale * pixel + bias per channel.
        inp = ct.ImageType(name="input", shape=shape, color_layout=ct.colorlayout.BGR, scale=1.0,
                           bias=[-m for m in mean])
    else:
        inp = ct.TensorType(name="input", shape=shape, dtype=np.float32)
    selector = KeepIndexMathFp32()
    compute = ct.precision.FLOAT32 if precision == "fp32" else ct.transform.FP16ComputePrecision(op_selector=selector)
    mlmodel = ct.convert(
        traced, inputs=[inp],
        # dtype=float32 explicitly: with an iOS16 target and FP16 precision the I/O would silently become FP16.
        outputs=[ct.TensorType(name=n, dtype=np.float32) for n in OUTPUT_NAMES],
        convert_to="mlprogram", minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
        compute_precision=compute,
    )
    if precision == "int8":
        from coremltools.optimize.coreml import linear_quantize_weights

        mlmodel = linear_quantize_weights(mlmodel, int8_weight_config())
    mlmodel._featherface_fp32_ops = len(selector.fp32_ops or ())
    return mlmodel


def _describe(mlmodel, meta: dict, image_input: bool) -> None:
    mlmodel.author = "featherface-mobile"
    mlmodel.short_description = (f"{meta['model']} face detector, {meta['input_size'][0]}x{meta['input_size'][1]}, "
                                 f"{meta['precision']}; outputs per prior: loc, conf (softmax), landms")
    mlmodel.version = str(meta.get("version", ""))
    mean = ", ".join(f"{m:g}" for m in meta["mean"])
    mlmodel.input_description["input"] = (
        f"BGR image; the model subtracts the mean ({mean})" if image_input
        else f"float32 1x3xSxS, BGR pixels minus the mean ({mean})")
    for name, text in zip(OUTPUT_NAMES, ("box regression (1, N, 4)", "class scores after softmax (1, N, 2)",
                                         "landmark regression (1, N, 10)")):
        mlmodel.output_description[name] = text
    ud = mlmodel.user_defined_metadata
    ud[METADATA_KEY] = json.dumps(meta)
    for key in ("model", "version", "precision"):
        ud[key] = str(meta[key])


def export_coreml(model: nn.Module, opts: ExportOptions, path: Path, metadata: dict) -> dict:
    """Write the .mlpackage at `path`. The program's precision is metadata["precision"] (the pipeline
    sets it from the options: fp16 by default, int8 with --int8; fp32 is reachable through the library)."""
    precision = metadata.get("precision", opts.precision)
    mlmodel = convert_to_mlmodel(model, opts.size, precision=precision, image_input=opts.image_input)
    meta = dict(metadata, input_layout="NCHW", input_type="image" if opts.image_input else "tensor",
                minimum_deployment_target=DEPLOYMENT_TARGET)
    _describe(mlmodel, meta, opts.image_input)
    mlmodel.save(str(path))
    return {"minimum_deployment_target": DEPLOYMENT_TARGET, "input_type": meta["input_type"],
            "fp32_index_ops": mlmodel._featherface_fp32_ops}


@dataclass
class CoreMLRunner:
    """Runs a saved .mlpackage: Core ML on macOS, the MIL reference evaluator elsewhere."""

    path: Path
    emulate_fp16: bool = True
    use_coreml: bool | None = None  # None: Core ML on macOS only
    name: str = "coreml"
    input_size: int | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        import coremltools as ct

        spec = ct.models.MLModel(str(self.path), skip_model_load=True).get_spec()
        ud = spec.description.metadata.userDefined
        self.metadata = json.loads(ud[METADATA_KEY]) if METADATA_KEY in ud else {}
        inp = spec.description.input[0]
        self.image_input = inp.type.WhichOneof("Type") == "imageType"
        self.input_size = (int(inp.type.imageType.height) if self.image_input
                           else int(inp.type.multiArrayType.shape[-1]))
        self.mean = np.asarray(self.metadata.get("mean", (104.0, 117.0, 123.0)), np.float32).reshape(1, 3, 1, 1)
        if self.use_coreml is None:
            self.use_coreml = sys.platform == "darwin"
        if self.use_coreml:
            self.model = ct.models.MLModel(str(self.path))
            self.name = "coreml"
        else:
            from .mil_eval import MilProgram

            self.model = MilProgram.load(self.path, emulate_fp16=self.emulate_fp16)
            self.name = "coreml-mil-eval" + ("-fp16" if self.emulate_fp16 else "")

    def _pixels(self, batch_nchw: np.ndarray) -> np.ndarray:
        """The BGR pixels (1, 3, S, S) an image-input model expects: the mean added back."""
        return batch_nchw.astype(np.float32) + self.mean

    def __call__(self, batch_nchw: np.ndarray):
        batch = np.ascontiguousarray(batch_nchw, dtype=np.float32)
        if self.use_coreml:
            if self.image_input:
                from PIL import Image

                bgr = np.clip(np.rint(self._pixels(batch)[0].transpose(1, 2, 0)), 0, 255).astype(np.uint8)
                feed = Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))  # PIL is RGB; Core ML reorders to BGR
            else:
                feed = batch
            outs = self.model.predict({"input": feed})
        else:
            outs = self.model({"input": self._pixels(batch) if self.image_input else batch})
        return tuple(np.asarray(outs[n], dtype=np.float32) for n in OUTPUT_NAMES)


def _coreml_runner(path: Path, *, emulate_fp16: bool = True, use_coreml: bool | None = None, **_) -> CoreMLRunner:
    from featherface_mobile.errors import require

    require("coremltools", "coreml")
    return CoreMLRunner(Path(path), emulate_fp16=emulate_fp16, use_coreml=use_coreml)


register_format(FormatSpec(
    name="coreml", suffix=".mlpackage", exporter=export_coreml, runner=_coreml_runner,
    options=frozenset({"int8", "fp16", "image_input"}), extra="coreml", modules=("coremltools",),
    default_precision="fp16", fp32_max_abs=1e-3,
    notes=(f"ML program, {DEPLOYMENT_TARGET}+, FP16 (gather-index math kept fp32), "
           "--int8 = INT8 per-channel conv/linear weights; deformable convs as gathers; "
           "verified on Linux by evaluating the MIL ops (mil_eval), on macOS by Core ML"),
))
