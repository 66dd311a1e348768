"""ONNX: traced export (opset 17), onnxslim simplification, metadata_props, optional in-graph NMS;
`--int8`: QDQ INT8 of the INT8-prepared model via onnxruntime's static quantizer (`quant/onnx_qdq.py`)."""
from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from featherface_mobile.errors import FeatherfaceError
from featherface_mobile.processing import prior_boxes

from .common import OUTPUT_NAMES, export_copy
from .formats import ExportOptions, FormatSpec, register_format

OPSET = 17
OPSET_NATIVE_DEFORM = 19  # the first opset with DeformConv


class _NMS(torch.autograd.Function):
    """Greedy NMS that exports as ONNX NonMaxSuppression (selected box indices, by score)."""

    @staticmethod
    def forward(ctx, boxes, scores, max_out, iou, score_thr):  # boxes (1,N,4), scores (1,1,N)
        b, s = boxes[0], scores[0, 0]
        order = torch.argsort(s, descending=True, stable=True)
        order = order[s[order] > score_thr]
        keep = []
        while order.numel() and len(keep) < int(max_out):
            i = order[0]
            keep.append(i)
            rest = order[1:]
            lt = torch.maximum(b[i, :2], b[rest, :2])
            rb = torch.minimum(b[i, 2:], b[rest, 2:])
            inter = (rb - lt).clamp(min=0).prod(1)
            area = lambda x: (x[..., 2] - x[..., 0]).clamp(min=0) * (x[..., 3] - x[..., 1]).clamp(min=0)  # noqa: E731
            iou_v = inter / (area(b[i]) + area(b[rest]) - inter).clamp(min=1e-12)
            order = rest[iou_v <= iou]
        idx = torch.stack(keep) if keep else torch.zeros(0, dtype=torch.int64)
        return torch.stack([torch.zeros_like(idx), torch.zeros_like(idx), idx], dim=1)

    @staticmethod
    def symbolic(g, boxes, scores, max_out, iou, score_thr):
        return g.op("NonMaxSuppression", boxes, scores, max_out, iou, score_thr, center_point_box_i=0)


class WithPostprocess(nn.Module):
    """Raw outputs plus `faces` (1, max_faces, 15: box, score, 5 landmarks, in input pixels) and `num_faces`."""

    def __init__(self, model: nn.Module, size: int, max_faces: int) -> None:
        super().__init__()
        self.model = model
        cfg = model.config
        self.register_buffer("priors", torch.from_numpy(prior_boxes(size, size, cfg.priors)))
        self.v0, self.v1 = cfg.priors.variance
        self.size, self.max_faces = size, max_faces
        self.score, self.iou = cfg.score_threshold, cfg.nms_iou

    def forward(self, x):
        loc, conf, landms = self.model(x)
        p = self.priors
        centers = p[:, :2] + loc[0, :, :2] * self.v0 * p[:, 2:]
        sizes = p[:, 2:] * torch.exp(loc[0, :, 2:] * self.v1)
        boxes = torch.cat([centers - sizes / 2, centers + sizes / 2], dim=1) * self.size
        lms = (landms[0].reshape(-1, 5, 2) * self.v0 * p[:, None, 2:] + p[:, None, :2]).reshape(-1, 10) * self.size
        scores = conf[0, :, 1]
        sel = _NMS.apply(boxes[None], scores[None, None], torch.tensor([self.max_faces]),
                         torch.tensor([self.iou], dtype=torch.float32), torch.tensor([self.score], dtype=torch.float32))
        dets = torch.cat([boxes, scores[:, None], lms, torch.ones_like(scores[:, None])], dim=1)
        dets = torch.cat([dets, torch.zeros_like(dets[:1])], dim=0)  # row N: the empty face used as padding
        pad = torch.full((self.max_faces,), dets.shape[0] - 1, dtype=torch.int64)
        idx = torch.cat([sel[:, 2], pad])[: self.max_faces]
        faces = dets[idx]
        return loc, conf, landms, faces[None, :, :15], faces[:, 15].sum().reshape(1).to(torch.int64)


def export_onnx(model: nn.Module, opts: ExportOptions, path: Path, metadata: dict) -> dict:
    if opts.int8:
        return export_onnx_int8(model, opts, path, metadata)
    return export_onnx_float(model, opts, path, metadata)


def export_onnx_int8(model: nn.Module, opts: ExportOptions, path: Path, metadata: dict) -> dict:
    """The float ONNX of `prepare_for_int8(model)` (same preparation and calibration images as TFLite
    INT8), quantized to QDQ INT8 into `path`."""
    import onnx

    from featherface_mobile.quant import QdqSettings, quantize_onnx_qdq
    from featherface_mobile.quant.ptq import int8_source

    from .tflite_format import calibration_batches  # lazy: tflite_format imports this module

    calib = [x.transpose(2, 0, 1)[None].copy() for x in calibration_batches(model, opts)]
    prepared, learned = int8_source(model, [torch.from_numpy(b) for b in calib[:32]], opts.int8_ranges, opts.size)
    settings = QdqSettings(float_groups=tuple(opts.int8_float))
    quantization = dict(settings.as_dict(), calibration_images=len(calib))
    with tempfile.TemporaryDirectory(prefix="ff-onnx-int8-") as tmp:
        float_path = Path(tmp) / "prepared.onnx"
        export_onnx_float(prepared, dataclasses.replace(opts, int8=False, int8_ranges=None, int8_float=()),
                          float_path, metadata)
        overrides = {}
        if learned is not None:
            from featherface_mobile.quant.learned import onnx_overrides

            overrides, quantization["learned_ranges"] = onnx_overrides(float_path, learned)
        proto = onnx.load(str(float_path))
        meta = dict(json.loads(_metadata(proto)["featherface"]), precision="int8", quantization=quantization)
        _set_metadata(proto, meta)
        onnx.save(proto, str(float_path))
        facts = quantize_onnx_qdq(float_path, path, calib, settings=settings, overrides=overrides)
    return {"opset": OPSET, "quantizer": "onnxruntime quantize_static (QDQ)", **facts,
            **({"learned_ranges": quantization["learned_ranges"]} if learned is not None else {})}


def _metadata(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def _set_metadata(proto, meta: dict) -> None:
    del proto.metadata_props[:]
    for k, v in {"featherface": json.dumps(meta), "model": meta["model"], "version": meta["version"]}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def export_onnx_float(model: nn.Module, opts: ExportOptions, path: Path, metadata: dict) -> dict:
    import onnx
    import onnxslim

    net = export_copy(model, native_deform=opts.native_deform)
    opset = OPSET_NATIVE_DEFORM if opts.native_deform else OPSET
    outputs = list(OUTPUT_NAMES)
    if opts.with_postprocess:
        net = WithPostprocess(net, opts.size, opts.max_faces).eval()
        outputs += ["faces", "num_faces"]
    dummy = torch.zeros(1, 3, opts.size, opts.size)
    dynamic_axes = None
    if opts.dynamic:
        dynamic_axes = {"input": {0: "batch", 2: "height", 3: "width"}, **{o: {0: "batch", 1: "priors"} for o in OUTPUT_NAMES}}
    torch.onnx.export(net, (dummy,), str(path), opset_version=opset, input_names=["input"], output_names=outputs,
                      dynamic_axes=dynamic_axes, dynamo=False, do_constant_folding=True)
    proto = onnxslim.slim(onnx.load(str(path)))
    meta = dict(metadata, input_layout="NCHW", dynamic=opts.dynamic, with_postprocess=opts.with_postprocess,
                native_deform=opts.native_deform)
    _set_metadata(proto, meta)
    proto.producer_name = "featherface-mobile"
    onnx.save(proto, str(path))
    return {"opset": opset, "nodes": len(proto.graph.node)}


_NO_DEFORMCONV = ("onnxruntime {version} cannot run: it needs onnxruntime >= 1.32, which onnx2tf 1.29 (the tflite extra) "
                  "excludes; use an environment with only the onnx extra and pip install 'onnxruntime>=1.32'")


def onnxruntime_runs_deformconv() -> bool:
    """Whether the installed onnxruntime has a DeformConv (opset 19) CPU kernel."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    shapes = {"X": [1, 1, 3, 3], "W": [1, 1, 3, 3], "offset": [1, 18, 1, 1]}
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in shapes.items()]
    node = helper.make_node("DeformConv", list(shapes), ["Y"], kernel_shape=[3, 3])
    graph = helper.make_graph([node], "probe", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET_NATIVE_DEFORM)], ir_version=9)
    try:
        ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # NOT_IMPLEMENTED on onnxruntime < 1.32
        return False
    return True


def _check_native_deform(opts: ExportOptions) -> None:
    """--native-deform artefacts are verified in onnxruntime, so it must have a DeformConv kernel."""
    import onnxruntime as ort

    if opts.native_deform and not onnxruntime_runs_deformconv():
        raise FeatherfaceError("--native-deform: the artefact could not be verified here, because installed "
                               + _NO_DEFORMCONV.format(version=ort.__version__))


@dataclass
class OnnxRunner:
    path: Path
    threads: int = 0
    name: str = "onnxruntime"
    input_size: int | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = self.threads
        try:
            self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types, not importable by name
            if "DeformConv" not in str(e):
                raise
            raise FeatherfaceError(f"{self.path.name} uses DeformConv (--native-deform), which installed "
                                   + _NO_DEFORMCONV.format(version=ort.__version__)) from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = json.loads(props["featherface"]) if "featherface" in props else {}
        shape = self.session.get_inputs()[0].shape
        self.input_size = shape[2] if isinstance(shape[2], int) else None
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch_nchw: np.ndarray):
        return tuple(self.session.run(list(OUTPUT_NAMES), {"input": batch_nchw.astype(np.float32)}))

    def run_all(self, batch_nchw: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.session.run(None, {"input": batch_nchw.astype(np.float32)})))


def _onnx_runner(path: Path, *, threads: int = 0, **_) -> OnnxRunner:
    from featherface_mobile.errors import require

    require("onnxruntime", "onnx")
    return OnnxRunner(Path(path), threads)


register_format(FormatSpec(
    name="onnx", suffix=".onnx", exporter=export_onnx, runner=_onnx_runner,
    options=frozenset({"dynamic", "with_postprocess", "int8", "calib", "native_deform", "int8_ranges", "int8_float"}),
    extra="onnx",
    modules=("onnx", "onnxslim", "onnxruntime"),
    option_checks=(_check_native_deform,),
    fp32_max_abs=1e-4,
    notes=("float32, NCHW; deformable convs exported as gathers (portable form), or as DeformConv (opset 19, "
           "onnxruntime >= 1.32) with --native-deform; --int8 = QDQ, per-channel int8 "
           "weights, uint8 activations, gather-index math and output tail kept float"),
))
