"""TFLite: float32, float16 and full-integer INT8 via onnx2tf (+ TFLiteConverter for INT8).

Runs on ai-edge-litert (XNNPACK); falls back to tflite-runtime with a warning. Metadata is embedded
in the flatbuffer's `metadata` table (name "featherface", JSON), readable without TensorFlow.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from featherface_mobile.errors import FeatherfaceError

from . import tflite_graph
from .common import OUTPUT_NAMES, model_inputs, sample_images
from .formats import ExportOptions, FormatSpec, register_format
from .onnx_format import export_onnx

METADATA_NAME = "featherface"


def calibration_batches(model: nn.Module, opts: ExportOptions) -> np.ndarray:
    """(K, S, S, 3) float32 NHWC calibration inputs, preprocessed exactly as at run time."""
    images = sample_images(opts.calib_images, opts.calib, split="train")
    if len(images) < 100:
        warnings.warn(f"INT8 calibration on only {len(images)} images (fewer than 100): accuracy may suffer", stacklevel=2)
    batches = model_inputs(images, opts.size, model.config.mean_bgr)
    return np.concatenate([b.transpose(0, 2, 3, 1) for b in batches]).astype(np.float32)


def export_tflite(model: nn.Module, opts: ExportOptions, path: Path, metadata: dict) -> dict:
    precision = opts.precision
    with tempfile.TemporaryDirectory(prefix="ff-tflite-") as tmp:
        tmp = Path(tmp)
        onnx_path = tmp / "model.onnx"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        if precision == "int8":
            import torch

            from featherface_mobile.quant.ptq import int8_source

            calib_nhwc = calibration_batches(model, opts)
            batches = [torch.from_numpy(x.transpose(2, 0, 1)[None].copy()) for x in calib_nhwc[:32]]
            model, ranges = int8_source(model, batches, opts.int8_ranges, opts.size, rounding=opts.int8_rounding,
                                        float_groups=opts.int8_float)
            if ranges is not None:
                env["FEATHERFACE_INT8_LEARNED"] = str(Path(opts.int8_ranges).resolve())
            if opts.int8_float:
                env["FEATHERFACE_INT8_FLOAT"] = ",".join(opts.int8_float)
        export_onnx(model, ExportOptions(size=opts.size), onnx_path, metadata)
        cached = _float_cache(onnx_path, precision)
        if cached is not None and cached.is_file():  # onnx2tf wrote both float variants of this graph before
            path.write_bytes(embed_metadata(cached.read_bytes(), dict(metadata, input_layout="NHWC", input_dtype="float32")))
            return {"converter": "onnx2tf 1.29 (float32 and float16 from one conversion, cached)"}
        args = [sys.executable, "-m", "featherface_mobile.export._tf_convert", str(onnx_path), str(tmp), precision]
        # INT8: the representative dataset; float: onnx2tf's own output check wants sample images.
        calib = tmp / "calib.npy"
        np.save(calib, calib_nhwc if precision == "int8" else
                calibration_batches(model, ExportOptions(size=opts.size, calib=opts.calib, calib_images=20)))
        args.append(str(calib))
        proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp)
        out_line = [ln for ln in proc.stdout.splitlines() if ln.startswith("TFLITE_OUTPUT=")]
        if proc.returncode != 0 or not out_line:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise FeatherfaceError(f"TFLite conversion failed ({tail[0][:200]}); run with the ONNX export to inspect the graph")
        produced = Path(out_line[0].split("=", 1)[1])
        meta = dict(metadata, input_layout="NHWC", input_dtype="float32")
        reported = {ln.split("=", 1)[0]: json.loads(ln.split("=", 1)[1]) for ln in proc.stdout.splitlines()
                    if ln.startswith(("INT8_LEARNED=", "INT8_FLOAT="))}
        learned = reported.get("INT8_LEARNED")
        quantization = {}
        if learned:
            quantization.update(activation_ranges="learned by QAT", learned_ranges=learned)
        if "INT8_FLOAT" in reported:
            quantization.update(float_groups=list(opts.int8_float), float_ops=len(reported["INT8_FLOAT"]))
        if opts.int8_rounding != "nearest":
            quantization.update(weight_rounding=opts.int8_rounding)
        if quantization:
            meta["quantization"] = quantization
        path.write_bytes(embed_metadata(produced.read_bytes(), meta))
        if cached is not None:
            _fill_float_cache(produced, cached.parent)
    facts = {"converter": "onnx2tf 1.29 + TFLiteConverter" if precision == "int8" else "onnx2tf 1.29"}
    return dict(facts, **({"learned_ranges": learned} if learned else {}),
                **({"float_ops": quantization["float_ops"]} if "float_ops" in quantization else {}))


def _float_cache(onnx_path: Path, precision: str) -> Path | None:
    """Where onnx2tf's float32/float16 outputs for this graph are kept between exports, or None.

    onnx2tf writes both float variants in one conversion (minutes for V1), so an FP16 export after an
    FP32 one of the same weights and size reuses it. Keyed by the graph without its metadata and by
    the onnx2tf version; FEATHERFACE_CACHE (default ~/.cache/featherface) moves it, "off" disables it.
    """
    import hashlib
    from importlib import metadata as importlib_metadata

    import onnx

    root = os.environ.get("FEATHERFACE_CACHE", str(Path.home() / ".cache" / "featherface"))
    if precision not in ("fp32", "fp16") or root == "off":
        return None
    proto = onnx.load(str(onnx_path))
    del proto.metadata_props[:]
    key = hashlib.sha256(proto.SerializeToString() + importlib_metadata.version("onnx2tf").encode()).hexdigest()[:24]
    return Path(root) / "onnx2tf" / key / f"{precision}.tflite"


def _fill_float_cache(produced: Path, cache_dir: Path) -> None:
    """Keep both float variants onnx2tf wrote beside `produced`, each written atomically."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for precision, suffix in (("fp32", "float32"), ("fp16", "float16")):
        src = produced.with_name(produced.name.rsplit("_", 1)[0] + f"_{suffix}.tflite")
        if src.is_file():
            tmp = cache_dir / f".{precision}.tflite.tmp"
            tmp.write_bytes(src.read_bytes())
            tmp.replace(cache_dir / f"{precision}.tflite")


def embed_metadata(model_bytes: bytes, meta: dict) -> bytes:
    """Return the .tflite bytes with `meta` as JSON in Model.metadata[name=featherface]."""
    schema = tflite_graph.schema()
    model = tflite_graph.read(model_bytes)
    buf = schema.BufferT()
    buf.data = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME] + [entry]
    return tflite_graph.write(model)


def read_metadata(path: Path) -> dict:
    schema = tflite_graph.schema()
    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        m = model.Metadata(i)
        if m.Name().decode() == METADATA_NAME:
            return json.loads(model.Buffers(m.Buffer()).DataAsNumpy().tobytes().decode())
    return {}


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:
        from featherface_mobile.errors import MissingDependency

        raise MissingDependency("ai_edge_litert", "tflite") from None
    warnings.warn("ai-edge-litert is not installed; using tflite-runtime, which runs INT8 models 10-20x slower", stacklevel=3)
    return Interpreter


@dataclass
class TFLiteRunner:
    path: Path
    threads: int = 2
    name: str = "litert"
    input_size: int | None = None
    metadata: dict = field(default_factory=dict)

    delegate: str = "xnnpack"

    def __post_init__(self):
        cls = _interpreter_class()
        self.interpreter = cls(model_path=str(self.path), num_threads=self.threads)
        try:
            self.interpreter.allocate_tensors()
        except RuntimeError as e:
            if "XNNPACK" not in str(e):
                raise
            # XNNPACK refuses some INT8 subgraphs at prepare time; LiteRT's built-in kernels run every op, slower.
            reason = str(e).split("failed to create XNNPACK runtime")[-1].strip() or "XNNPACK prepare failed"
            warnings.warn(f"{self.path.name}: XNNPACK cannot run it ({reason}); using LiteRT's built-in kernels", stacklevel=2)
            resolver = sys.modules[cls.__module__].OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            self.interpreter = cls(model_path=str(self.path), num_threads=self.threads,
                                   experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
            self.delegate = "builtin"
        self.metadata = read_metadata(self.path)
        inp = self.interpreter.get_input_details()[0]
        self._input = inp
        self.input_size = int(inp["shape"][1])
        self._outputs = self._match_outputs()

    def _match_outputs(self) -> list[dict]:
        """Output details in (loc, conf, landms) order: by name, else by last dimension 4/2/10."""
        outs = self.interpreter.get_output_details()
        by_name = {o["name"].split(":")[0]: o for o in outs}
        if all(n in by_name for n in OUTPUT_NAMES):
            return [by_name[n] for n in OUTPUT_NAMES]
        by_dim = {int(o["shape"][-1]): o for o in outs}
        return [by_dim[4], by_dim[2], by_dim[10]]

    def __call__(self, batch_nchw: np.ndarray):
        x = np.ascontiguousarray(batch_nchw.transpose(0, 2, 3, 1), dtype=np.float32)
        if self._input["dtype"] != np.float32:
            scale, zero = self._input["quantization"]
            x = np.clip(np.round(x / scale + zero), -128 if self._input["dtype"] == np.int8 else 0,
                        127 if self._input["dtype"] == np.int8 else 255).astype(self._input["dtype"])
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        outs = []
        for o in self._outputs:
            y = self.interpreter.get_tensor(o["index"])
            if o["dtype"] != np.float32:
                scale, zero = o["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            outs.append(y.astype(np.float32))
        return tuple(outs)


def _tflite_runner(path: Path, *, threads: int = 2, **_) -> TFLiteRunner:
    return TFLiteRunner(Path(path), threads)


register_format(FormatSpec(
    name="tflite", suffix=".tflite", exporter=export_tflite, runner=_tflite_runner,
    options=frozenset({"int8", "fp16", "calib", "int8_ranges", "int8_float", "int8_rounding"}), extra="tflite",
    modules=("onnx", "onnxslim", "onnx2tf", "tensorflow", "ai_edge_litert"),
    fp32_max_abs=1e-3,
    notes="NHWC float32 input; INT8 is full-integer inside with float32 input/output tensors",
))
