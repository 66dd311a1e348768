"""`benchmark()`: latency, memory and end-to-end cost of artefacts, each in its own worker process.

Every contender (one artefact at one thread count) is loaded in a separate worker process, so its
load time and peak RSS are its own; the parent then runs the workers round-robin (A B C A B C ...)
in small chunks, so machine drift hits every contender alike. Each timed iteration runs
preprocessing (letterbox + normalise a real image), the model, and postprocessing (decode + NMS)
and times the three separately: "model" is the runtime call alone, "e2e" the sum.

Also here: a MAC counter (forward hooks, deformable sampling counted), a MAC counter for .tflite
graphs, a large-convolution "peak" artefact per runtime, and onnxruntime per-op profiling.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import FeatherfaceError

RUNTIMES = {".pth": "pytorch", ".pt": "pytorch", ".tar": "pytorch", ".ckpt": "pytorch", ".onnx": "onnxruntime",
            ".tflite": "litert", ".mlpackage": "coreml", ".torchscript": "pytorch"}


@dataclass
class BenchResult:
    """One contender: an artefact at one thread count. Times in milliseconds, memory in MB."""

    artefact: str
    label: str
    kind: str  # "detector" (featherface artefact), "peer" (BlazeFace), "raw" (model only, e.g. peak conv)
    runtime: str
    precision: str
    model: str | None
    input_size: int
    threads: int
    runs: int
    load_ms: float
    first_ms: float
    median_ms: float
    p90_ms: float
    min_ms: float
    fps: float
    e2e_median_ms: float | None
    e2e_p90_ms: float | None
    pre_median_ms: float | None
    post_median_ms: float | None
    peak_rss_mb: float
    rss_over_baseline_mb: float
    macs: int | None = None
    params: int | None = None
    gmacs_per_s: float | None = None
    ap: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def megapixels(self) -> float:
        return self.input_size * self.input_size / 1e6

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- work done inside a worker


def _bench_image(path: str | None) -> np.ndarray:
    from .detect import read_image

    if path:
        return read_image(path)
    from skimage import data as skdata

    return np.ascontiguousarray(skdata.astronaut()[..., ::-1])


class _DetectorTask:
    """A featherface artefact: letterbox + normalise, runner, decode + NMS."""

    kind = "detector"

    def __init__(self, runner, size: int, image: np.ndarray) -> None:
        from .processing import Thresholds
        from .runtime import model_config

        self.runner, self.image = runner, image
        self.cfg = model_config(runner)
        self.size = runner.input_size or size
        self.thresholds = Thresholds(score=self.cfg.score_threshold, nms_iou=self.cfg.nms_iou)

    def pre(self):
        from .processing import letterbox, normalize

        canvas, lb = letterbox(self.image, self.size)
        return normalize(canvas, self.cfg.mean_bgr), lb

    def model(self, x):
        return self.runner(x[0])

    def post(self, raw, x) -> int:
        from .processing import postprocess

        loc, conf, landms = (r[0] for r in raw)
        return len(postprocess(loc, conf, landms, input_width=self.size, input_height=self.size,
                               priors=self.cfg.priors, thresholds=self.thresholds, letterbox_info=x[1]))


def blazeface_anchors(size: int) -> np.ndarray:
    """(N, 2) anchor centres (x, y), normalised, of MediaPipe's BlazeFace SSD layouts.

    Short range (128 px): strides 8 (2 anchors/cell) and 16 (6); full range (192 px): stride 4 (1).
    """
    layout = {128: ((8, 2), (16, 6)), 192: ((4, 1),)}
    if size not in layout:
        raise FeatherfaceError(f"no BlazeFace anchor layout for input {size}; known: 128 (short range), 192 (full range)")
    centres = []
    for stride, per_cell in layout[size]:
        n = size // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        centres.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


class _BlazeFaceTask:
    """MediaPipe BlazeFace .tflite: letterbox, RGB in [-1, 1], interpreter, SSD decode + plain NMS.

    MediaPipe itself uses weighted NMS; plain greedy NMS costs about the same and keeps the
    comparison to our postprocessing like for like.
    """

    kind = "peer"

    def __init__(self, interpreter, image: np.ndarray) -> None:
        self.it, self.image = interpreter, image
        inp = interpreter.get_input_details()[0]
        self.input_index, self.size = inp["index"], int(inp["shape"][1])
        outs = sorted(interpreter.get_output_details(), key=lambda o: -int(o["shape"][-1]))
        self.reg_index, self.score_index = outs[0]["index"], outs[1]["index"]
        self.anchors = blazeface_anchors(self.size)

    def pre(self):
        from .processing import letterbox

        canvas, lb = letterbox(self.image, self.size)
        x = canvas[..., ::-1].astype(np.float32) / 127.5 - 1.0
        return x[None], lb

    def model(self, x):
        self.it.set_tensor(self.input_index, x[0])
        self.it.invoke()
        return self.it.get_tensor(self.reg_index)[0], self.it.get_tensor(self.score_index)[0]

    def post(self, raw, x) -> int:
        from .processing import nms

        reg, logits = raw
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[:, 0], -100, 100)))
        idx = np.nonzero(scores > 0.5)[0]
        a = self.anchors[idx]
        r = reg[idx] / self.size
        cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
        boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], 1) * self.size
        keep = nms(boxes, scores[idx], 0.3)
        x[1].to_image(boxes[keep])
        return len(keep)


class _RawTask:
    """Any other graph (e.g. the peak-conv artefacts): a fixed random input, the model call only."""

    kind = "raw"

    def __init__(self, call, x: np.ndarray) -> None:
        self.call, self.x = call, x

    def pre(self):
        return (self.x,)

    def model(self, x):
        return self.call(x[0])

    post = None


def _tflite_interpreter(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


def _is_featherface(path: Path) -> bool:
    if path.suffix == ".tflite":
        from featherface_mobile.export.tflite_format import read_metadata

        return bool(read_metadata(path))
    if path.suffix == ".onnx":
        import onnx

        return any(p.key == "featherface" for p in onnx.load(str(path), load_external_data=False).metadata_props)
    return path.suffix in (".pth", ".pt", ".tar", ".ckpt", ".mlpackage")


def _tflite_precision(path: Path) -> str:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    types = {d["dtype"] for d in it.get_tensor_details()}
    return "int8" if np.int8 in types else "fp16" if np.float16 in types else "fp32"


def _load_task(path: Path, threads: int, size: int, image: np.ndarray):
    """(task, runtime, precision, model, input size). Imports happen before the caller's load timer."""
    suffix = path.suffix
    if suffix == ".mlpackage":
        if platform.system() != "Darwin":
            raise FeatherfaceError(f"{path.name}: no Core ML runtime on Linux (the MIL evaluator here is a correctness tool, "
                                   "not a runtime); benchmark .mlpackage files on macOS")
    if suffix == ".torchscript":
        import torch

        torch.set_num_threads(threads)
        net = torch.jit.load(str(path)).eval()
        shape = json.loads(path.with_name(path.name + ".json").read_text())["input_shape"]

        def call(x):
            with torch.inference_mode():
                return net(torch.from_numpy(x)).numpy()

        return _RawTask(call, np.random.default_rng(0).standard_normal(shape, dtype=np.float32)), "pytorch", "fp32", None, shape[-1]
    if _is_featherface(path):
        import torch

        from .runtime import load_runner

        torch.set_num_threads(threads)
        kwargs = {"threads": threads} if suffix in (".onnx", ".tflite") else {"use_coreml": True} if suffix == ".mlpackage" else {}
        runner = load_runner(path, **kwargs)
        task = _DetectorTask(runner, size, image)
        precision = runner.metadata.get("precision", "fp32")
        return task, RUNTIMES.get(suffix, suffix), precision, runner.metadata.get("model"), task.size
    if suffix == ".tflite":
        it = _tflite_interpreter(path, threads)
        outs = {int(o["shape"][-1]) for o in it.get_output_details()}
        if outs == {16, 1}:
            task = _BlazeFaceTask(it, image)
            return task, "litert", _tflite_precision(path), path.stem, task.size
        inp = it.get_input_details()[0]
        x = np.random.default_rng(0).standard_normal(inp["shape"], dtype=np.float32)

        def call(v):
            it.set_tensor(inp["index"], v)
            it.invoke()
            return it.get_tensor(it.get_output_details()[0]["index"])

        return _RawTask(call, x), "litert", _tflite_precision(path), None, int(inp["shape"][1])
    if suffix == ".onnx":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        x = np.random.default_rng(0).standard_normal(inp.shape, dtype=np.float32)
        return _RawTask(lambda v: sess.run(None, {inp.name: v})[0], x), "onnxruntime", "fp32", None, int(inp.shape[-1])
    raise FeatherfaceError(f"cannot benchmark {path.name}: unsupported artefact type {suffix!r}; use .pth, .onnx, .tflite")


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mb() -> float:
    """Peak RSS of this process's own address space.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork + exec, so a worker would
    report its parent's peak whenever the parent is larger.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def _time_iteration(task) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    x = task.pre()
    t1 = time.perf_counter()
    raw = task.model(x)
    t2 = time.perf_counter()
    if task.post is not None:
        task.post(raw, x)
    t3 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3


def _worker_main() -> None:
    """Protocol on stdin/stdout, one JSON object per line: a spec, then "run N" / "stats" / "quit"."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the libraries print goes to stderr, not into the protocol
    spec = json.loads(sys.stdin.readline())
    try:
        import featherface_mobile.export  # noqa: F401  (runtimes and runners imported before the load timer)
        import featherface_mobile.processing  # noqa: F401

        image = _bench_image(spec["image"])
        baseline = _rss_mb()
        t0 = time.perf_counter()
        task, runtime, precision, model, size = _load_task(Path(spec["path"]), spec["threads"], spec["size"], image)
        load_ms = (time.perf_counter() - t0) * 1e3
        x = task.pre()
        t0 = time.perf_counter()
        task.model(x)
        first_ms = (time.perf_counter() - t0) * 1e3
    except Exception as e:  # reported to the parent, which raises it as a one-line error
        proto.write(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0][:300]}) + "\n")
        return
    proto.write(json.dumps({"ok": True, "kind": task.kind, "runtime": runtime, "precision": precision, "model": model,
                            "input_size": size, "load_ms": load_ms, "first_ms": first_ms}) + "\n")
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":
            times = [_time_iteration(task) for _ in range(int(arg))]
            proto.write(json.dumps({"pre": [t[0] for t in times], "model": [t[1] for t in times],
                                    "post": [t[2] for t in times]}) + "\n")
        elif cmd == "stats":
            proto.write(json.dumps({"peak_rss_mb": _peak_rss_mb(), "rss_over_baseline_mb": _peak_rss_mb() - baseline}) + "\n")
        else:
            return


# ---------------------------------------------------------------- the parent: spawn, interleave, summarise


class _Worker:
    def __init__(self, path: Path, threads: int, size: int, image: str | None) -> None:
        self.path, self.threads = path, threads
        self.log = tempfile.TemporaryFile()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                   OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.proc = subprocess.Popen([sys.executable, "-m", "featherface_mobile.bench", "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self._send({"path": str(path), "threads": threads, "size": size, "image": image})
        self.pre, self.model, self.post = [], [], []

    def _send(self, obj) -> None:
        self.proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        self.proc.stdin.flush()

    def reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            tail = self.log.read().decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise FeatherfaceError(f"benchmark worker for {self.path.name} died ({tail[0][:200]})")
        return json.loads(line)

    def run(self, n: int, keep: bool = True) -> None:
        self._send(f"run {n}")
        r = self.reply()
        if keep:
            self.pre += r["pre"]
            self.model += r["model"]
            self.post += r["post"]

    def close(self) -> None:
        try:
            self._send("quit")
            self.proc.wait(timeout=30)
        except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
            self.proc.kill()
        self.log.close()


def _p90(v: list[float]) -> float:
    return float(np.percentile(v, 90))


def _label(path: Path, info: dict) -> str:
    if info["kind"] == "detector":
        # Export tags after <model>_<size>_<precision> (deformconv, dynamic, nms) tell variants apart.
        tags = path.stem.split("_")[3:] if path.stem.startswith(f"{info['model']}_") else []
        return " ".join([info["model"], info["runtime"], info["precision"], str(info["input_size"]), *tags])
    return f"{path.stem} {info['runtime']} {info['precision']} {info['input_size']}"


def benchmark(
    artefacts: list[str | Path] | tuple[str | Path, ...],
    *,
    threads: tuple[int, ...] | list[int] = (1, 2),
    size: int = 640,
    warmup: int = 5,
    runs: int = 50,
    chunk: int = 5,
    image: str | Path | None = None,
    progress: bool = True,
) -> list[BenchResult]:
    """Benchmark every artefact at every thread count, interleaved; one BenchResult per pair.

    `size` applies to checkpoints (any size works); exported artefacts run at their fixed size.
    `image` is the picture pre/postprocessing work on (default: the first held-out WIDER image,
    else scikit-image's astronaut).
    """
    from tqdm import tqdm

    paths = [Path(a) for a in artefacts]
    for p in paths:
        if not p.exists():
            raise FeatherfaceError(f"artefact not found: {p}; check the path")
        if p.suffix == ".mlpackage" and platform.system() != "Darwin":
            raise FeatherfaceError(f"{p.name}: no Core ML runtime on Linux (the MIL evaluator here is a correctness tool, "
                                   "not a runtime); benchmark .mlpackage files on macOS")
    if size % 32:
        raise FeatherfaceError(f"--size {size} is not a multiple of 32; use e.g. 320 or 640")
    if runs < 1 or warmup < 0 or not threads:
        raise FeatherfaceError("need --runs >= 1, --warmup >= 0 and at least one thread count")
    image = str(image) if image else default_image()
    workers: list[_Worker] = []
    infos: list[dict] = []
    bar = tqdm(total=len(paths) * len(threads) * (1 + warmup + runs), desc="bench", unit="run", disable=not progress)
    try:
        for p in paths:  # loaded one at a time, while every other worker waits idle
            for t in threads:
                w = _Worker(p, int(t), size, image)
                workers.append(w)
                info = w.reply()
                if not info["ok"]:
                    raise FeatherfaceError(f"cannot benchmark {p.name} with {t} threads: {info['error']}")
                infos.append(info)
                bar.update(1)
        for phase, total in (("warmup", warmup), ("runs", runs)):
            done, turn = 0, 0
            while done < total:
                n = min(chunk, total - done)
                order = workers[turn % len(workers):] + workers[: turn % len(workers)]  # rotate who goes first
                for w in order:
                    w.run(n, keep=phase == "runs")
                    bar.update(n)
                    time.sleep(0.01)  # let the previous runtime's spinning threads go idle
                done, turn = done + n, turn + 1
        results = []
        for w, info in zip(workers, infos):
            w._send("stats")
            mem = w.reply()
            e2e = [a + b + c for a, b, c in zip(w.pre, w.model, w.post)] if info["kind"] != "raw" else None
            med = statistics.median(w.model)
            notes = []
            if info["kind"] == "detector" and w.path.suffix in (".pth", ".pt", ".tar", ".ckpt"):
                notes.append("eager PyTorch, torch.set_num_threads")
            results.append(BenchResult(
                artefact=str(w.path), label=_label(w.path, info), kind=info["kind"], runtime=info["runtime"],
                precision=info["precision"], model=info["model"], input_size=int(info["input_size"]), threads=w.threads,
                runs=len(w.model), load_ms=info["load_ms"], first_ms=info["first_ms"], median_ms=med,
                p90_ms=_p90(w.model), min_ms=min(w.model), fps=1e3 / med,
                e2e_median_ms=statistics.median(e2e) if e2e else None, e2e_p90_ms=_p90(e2e) if e2e else None,
                pre_median_ms=statistics.median(w.pre) if e2e else None,
                post_median_ms=statistics.median(w.post) if e2e else None,
                peak_rss_mb=mem["peak_rss_mb"], rss_over_baseline_mb=mem["rss_over_baseline_mb"], notes=notes))
    finally:
        bar.close()
        for w in workers:
            w.close()
    for r in results:
        add_macs(r)
    return results


def default_image() -> str | None:
    from .paths import wider_val_dir
    from .splits import split_images

    data = wider_val_dir()
    return str(data / "images" / split_images("eval", data)[0]) if data else None


# ---------------------------------------------------------------- MACs


@dataclass
class MacCount:
    """Multiply-accumulates of one forward pass (batch 1) and the parameter count."""

    conv: int
    linear: int
    deform_matmul: int
    deform_sampling: int  # 4 bilinear weights + 1 modulation per sampled value
    params: int

    @property
    def total(self) -> int:
        return self.conv + self.linear + self.deform_matmul + self.deform_sampling


def count_macs(model, size: int) -> MacCount:
    """Count MACs with forward hooks on Conv2d, Linear and the modulated deformable conv.

    Elementwise ops, activations, pooling, softmax and BiFPN's weighted sums are not counted.
    """
    import torch
    from torch import nn

    from .models.deform import ModulatedDeformConv2d

    counts = {"conv": 0, "linear": 0, "deform_matmul": 0, "deform_sampling": 0}

    def conv_hook(m, inp, out):
        counts["conv"] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, inp, out):
        counts["linear"] += out.numel() * m.in_features

    def deform_hook(m, inp, out):
        w = m.regular_conv.weight
        taps = w.shape[2] * w.shape[3]
        cin = inp[0].shape[1]
        positions = out.shape[2] * out.shape[3]
        counts["deform_matmul"] += out.numel() * cin * taps  # regular_conv is applied functionally, no Conv2d hook
        counts["deform_sampling"] += 5 * cin * taps * positions

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, ModulatedDeformConv2d):
            hooks.append(m.register_forward_hook(deform_hook))
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 3, size, size))
    finally:
        for h in hooks:
            h.remove()
    return MacCount(**counts, params=int(sum(p.numel() for p in model.parameters())))


def tflite_op_macs(path: str | Path) -> list[tuple[str, int]]:
    """(op type, MACs) of every op of a .tflite graph; MACs counted for CONV_2D, DEPTHWISE_CONV_2D,
    FULLY_CONNECTED and BATCH_MATMUL, 0 for the rest."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    shapes = {d["index"]: tuple(int(s) for s in d["shape"]) for d in it.get_tensor_details()}
    rows = []
    for op in it._get_ops_details():
        name, ins, outs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        out = int(np.prod(shapes[outs[0]])) if outs and outs[0] in shapes else 0
        w = shapes.get(ins[1], ()) if len(ins) > 1 else ()
        macs = 0
        if name == "CONV_2D" and len(w) == 4:
            macs = out * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D" and len(w) == 4:
            macs = out * w[1] * w[2]
        elif name == "FULLY_CONNECTED" and w:
            macs = out * w[-1]
        elif name == "BATCH_MATMUL" and ins[0] in shapes:
            macs = out * shapes[ins[0]][-1]
        rows.append((name, macs))
    return rows


def tflite_macs(path: str | Path) -> int:
    """MACs of a .tflite graph (see `tflite_op_macs`)."""
    return sum(m for _, m in tflite_op_macs(path))


_MAC_CACHE: dict[tuple[str, int], MacCount] = {}


def model_macs(model: str, size: int) -> MacCount:
    if (model, size) not in _MAC_CACHE:
        from .models import create_model

        _MAC_CACHE[model, size] = count_macs(create_model(model), size)
    return _MAC_CACHE[model, size]


def add_macs(r: BenchResult) -> None:
    """Fill macs, params and achieved GMAC/s (model-only median) of a result."""
    path = Path(r.artefact)
    sidecar = path.with_name(path.name + ".json")
    if r.kind == "detector" and r.model:
        mc = model_macs(r.model, r.input_size)
        r.macs, r.params = mc.total, mc.params
    elif sidecar.is_file():
        facts = json.loads(sidecar.read_text())
        r.macs, r.params = facts.get("macs"), facts.get("params")
    elif path.suffix == ".tflite":
        r.macs = tflite_macs(path)
    if r.macs:
        r.gmacs_per_s = r.macs / (r.median_ms * 1e-3) / 1e9


# ---------------------------------------------------------------- the machine's peak: one large convolution


def peak_conv_artefacts(out: str | Path, *, channels: int = 256, hw: int = 80) -> list[Path]:
    """A channels->channels 3x3 conv at hw x hw as TorchScript, ONNX and TFLite fp32/int8 (+ a .json of its MACs).

    The TFLite files are built by TensorFlow's TFLiteConverter in a subprocess (INT8: full-integer,
    float input/output, like the project's INT8 exports), and run on the same LiteRT + XNNPACK.
    """
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"peak_conv_{channels}x{hw}"
    macs = channels * channels * 9 * hw * hw
    params = channels * channels * 9 + channels
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).eval()
    x = torch.randn(1, channels, hw, hw)
    paths = {"torchscript": out / f"{stem}.torchscript", "onnx": out / f"{stem}.onnx",
             "fp32": out / f"{stem}_fp32.tflite", "int8": out / f"{stem}_int8.tflite"}
    if not paths["torchscript"].is_file():
        torch.jit.save(torch.jit.trace(conv, x), str(paths["torchscript"]))
    if not paths["onnx"].is_file():
        torch.onnx.export(conv, (x,), str(paths["onnx"]), opset_version=17, input_names=["input"], dynamo=False)
    if not (paths["fp32"].is_file() and paths["int8"].is_file()):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        proc = subprocess.run([sys.executable, "-m", "featherface_mobile.bench", "--peak-tflite", str(out), stem,
                               str(channels), str(hw)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise FeatherfaceError(f"peak-conv TFLite conversion failed ({tail[0][:200]})")
    shape = [1, channels, hw, hw]
    for p in paths.values():
        p.with_name(p.name + ".json").write_text(json.dumps({"macs": macs, "params": params, "input_shape": shape}))
    return list(paths.values())


def _peak_tflite_main(out: str, stem: str, channels: int, hw: int) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.standard_normal((3, 3, channels, channels), dtype=np.float32) * 0.05)
    bias = tf.constant(rng.standard_normal(channels, dtype=np.float32) * 0.1)

    @tf.function(input_signature=[tf.TensorSpec([1, hw, hw, channels], tf.float32)])
    def conv(x):
        return tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias)

    fn = conv.get_concrete_function()
    fp32 = tf.lite.TFLiteConverter.from_concrete_functions([fn], conv).convert()
    Path(out, f"{stem}_fp32.tflite").write_bytes(fp32)
    conv8 = tf.lite.TFLiteConverter.from_concrete_functions([fn], conv)
    conv8.optimizations = [tf.lite.Optimize.DEFAULT]
    conv8.representative_dataset = lambda: ([rng.standard_normal((1, hw, hw, channels), dtype=np.float32)] for _ in range(8))
    conv8.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    Path(out, f"{stem}_int8.tflite").write_bytes(conv8.convert())


# ---------------------------------------------------------------- per-op profiles


def profile_onnx(path: str | Path, *, threads: int = 2, runs: int = 20, top: int = 10) -> list[tuple[str, float, float]]:
    """onnxruntime's profiler: (op type, ms per run, share of node time) for the top op types."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="ff-prof-") as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        for _ in range(runs):
            sess.run(None, {inp.name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    n_runs = max(sum(1 for e in events if e.get("name") == "model_run"), 1)
    by_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            by_op[op] = by_op.get(op, 0.0) + e["dur"] / 1e3
    total = sum(by_op.values()) or 1.0
    rows = sorted(((op, ms / n_runs, ms / total) for op, ms in by_op.items()), key=lambda r: -r[1])
    return rows[:top]


def tflite_op_mix(path: str | Path, top: int = 10) -> list[tuple[str, int, float]]:
    """(op type, count, share of counted MACs) of a .tflite graph, largest share first.

    LiteRT's Python interpreter exposes no per-op profiler (ai-edge-litert 2.1), so this is the
    static picture: which ops the graph holds and where its arithmetic is.
    """
    ops = tflite_op_macs(path)
    total = sum(m for _, m in ops) or 1
    mix: dict[str, list] = {}
    for name, macs in ops:
        entry = mix.setdefault(name, [0, 0])
        entry[0] += 1
        entry[1] += macs
    return sorted(((n, c, m / total) for n, (c, m) in mix.items()), key=lambda r: (-r[2], -r[1]))[:top]


_FUSED_INTO_CONV = frozenset({"PAD"})  # XNNPACK folds a zero PAD into the convolution it feeds
_CONVS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})


def tflite_op_profile(path: str | Path, *, threads: int = 2, runs: int = 20, top: int = 12) -> tuple[list, float]:
    """Per-op time of a .tflite graph, each op run on its own:
    ([(op type, count, ms per run, share of time, share of MACs)], sum ms).

    LiteRT's Python interpreter has no per-op profiler, so every operator is cut out into a
    one-op model (same tensors, constants and quantization) and timed in the interpreter with the
    same delegate (XNNPACK, `threads`) on random inputs of its dtype. A PAD that feeds a conv is
    timed together with it and counted as the conv (XNNPACK fuses the two). The sum over ops is
    close to the graph's time; the gap to its measured median is what the isolation cannot show
    (cache reuse between ops, delegate partition boundaries).
    """
    from featherface_mobile.export import tflite_graph
    from featherface_mobile.export.tflite_format import _interpreter_class

    model = tflite_graph.read(Path(path).read_bytes())
    sg = model.subgraphs[0]
    types = tflite_graph.op_types(model)
    constant = [tflite_graph.is_constant(model, t) for t in sg.tensors]
    ops, rng = list(sg.operators), np.random.default_rng(0)
    op_type = {id(op): types[op.opcodeIndex] for op in ops}
    consumers: dict[int, list] = {}
    for op in ops:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)
    pad_of: dict[int, object] = {}  # id(conv) -> the PAD that feeds only it
    for op in ops:
        users = consumers.get(op.outputs[0], [])
        if op_type[id(op)] in _FUSED_INTO_CONV and len(users) == 1 and op_type[id(users[0])] in _CONVS:
            pad_of[id(users[0])] = op
    fused = {id(pad) for pad in pad_of.values()}
    # FP16 models store weights as DEQUANTIZE(constant): part of the op that uses them, done once at load.
    weight_of = {op.outputs[0]: op for op in ops if op_type[id(op)] == "DEQUANTIZE" and constant[op.inputs[0]]}
    op_macs = {id(op): m for op, (_, m) in zip(ops, tflite_op_macs(path))}
    model.metadata, model.signatureDefs = [], []
    cls = _interpreter_class()
    per_op: dict[str, list] = {}
    weight_ops = {id(op) for op in weight_of.values()}
    for op in ops:
        if id(op) in fused or id(op) in weight_ops:
            continue
        group = [pad_of[id(op)], op] if id(op) in pad_of else [op]
        group = [weight_of[i] for g in group for i in g.inputs if i in weight_of] + group
        produced = {o for g in group for o in g.outputs}
        sg.operators = group
        sg.inputs = sorted({i for g in group for i in g.inputs if i >= 0 and not constant[i] and i not in produced})
        sg.outputs = list(op.outputs)
        content = tflite_graph.write(model)
        try:
            it = cls(model_content=content, num_threads=threads)
            it.allocate_tensors()
        except RuntimeError:  # XNNPACK refuses this op alone: LiteRT's own kernel, as in the graph
            it = cls(model_content=content, num_threads=threads,
                     experimental_op_resolver_type=sys.modules[cls.__module__].OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            it.allocate_tensors()
        for d in it.get_input_details():
            if d["dtype"] in (np.int8, np.uint8):  # quantized activations
                info = np.iinfo(d["dtype"])
                x = rng.integers(info.min, info.max, d["shape"], endpoint=True)
            elif np.issubdtype(d["dtype"], np.integer):  # indices (GATHER): 0 is valid for every table
                x = np.zeros(d["shape"])
            else:
                x = rng.standard_normal(d["shape"])
            it.set_tensor(d["index"], x.astype(d["dtype"]))
        try:
            for _ in range(3):
                it.invoke()
        except RuntimeError:  # an op that cannot run on made-up inputs: left out of the sum, counted
            per_op.setdefault("(not timeable alone)", [0, 0.0, 0])[0] += 1
            continue
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            it.invoke()
            times.append(time.perf_counter() - t0)
        entry = per_op.setdefault(op_type[id(op)] + (" (+PAD)" if len(group) > 1 else ""), [0, 0.0, 0])
        entry[0] += 1
        entry[1] += 1e3 * float(np.median(times))
        entry[2] += op_macs[id(op)]
    total = sum(e[1] for e in per_op.values()) or 1.0
    all_macs = sum(e[2] for e in per_op.values()) or 1
    rows = sorted(((n, c, ms, ms / total, m / all_macs) for n, (c, ms, m) in per_op.items()), key=lambda r: -r[2])
    return rows[:top], total


def profile_report(path: str | Path, *, threads: int = 2) -> str:
    """Text report of the top ops of one artefact (onnxruntime profiler, or the .tflite op mix)."""
    path = Path(path)
    if path.suffix == ".onnx":
        rows = profile_onnx(path, threads=threads)
        lines = [f"onnxruntime profile of {path.name} ({threads} threads): op type, ms per run, share of node time"]
        lines += [f"  {op:<24} {ms:8.3f} ms  {share:6.1%}" for op, ms, share in rows]
    elif path.suffix == ".tflite":
        rows, total = tflite_op_profile(path, threads=threads)
        lines = [f"LiteRT profile of {path.name} ({threads} threads, each op timed on its own, sum {total:.2f} ms): "
                 "op type, count, ms per run, share of time, share of counted MACs"]
        lines += [f"  {op:<26} x{n:<4} {ms:8.3f} ms  {share:6.1%}  {mac_share:6.1%} of MACs"
                  for op, n, ms, share, mac_share in rows]
    else:
        lines = [f"{path.name}: no per-op profile for {path.suffix} (profile the .onnx export of the same model)"]
    return "\n".join(lines)


# ---------------------------------------------------------------- reporting


def format_table(results: list[BenchResult]) -> str:
    head = ("| artefact | threads | load ms | first ms | median ms | p90 ms | min ms | FPS | e2e median ms "
            "(pre + model + post) | peak RSS MB (+load) | GMAC | GMAC/s |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"]
    for r in results:
        e2e = (f"{r.e2e_median_ms:.1f} ({r.pre_median_ms:.1f} + {r.median_ms:.1f} + {r.post_median_ms:.1f})"
               if r.e2e_median_ms is not None else "n/a (model only)")
        lines.append(f"| {r.label} | {r.threads} | {r.load_ms:.0f} | {r.first_ms:.1f} | {r.median_ms:.2f} | {r.p90_ms:.2f} | "
                     f"{r.min_ms:.2f} | {r.fps:.1f} | {e2e} | {r.peak_rss_mb:.0f} (+{r.rss_over_baseline_mb:.0f}) | "
                     f"{r.macs / 1e9 if r.macs else float('nan'):.3f} | {r.gmacs_per_s or float('nan'):.1f} |")
    return "\n".join(lines)


def write_json(results: list[BenchResult], path: str | Path, **extra) -> Path:
    from .io import write_json as _write

    return _write(path, {**extra, "machine": machine_description(), "results": [r.as_dict() for r in results]})


def plot_results(results: list[BenchResult], path: str | Path, *, title: str = "") -> Path:
    """Horizontal bar chart: model-only median and end-to-end median per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    labels = [f"{r.label} t{r.threads}" for r in results]
    y = np.arange(len(results))
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.28 * len(results)))
    e2e = [r.e2e_median_ms or 0.0 for r in results]
    ax.barh(y, e2e, height=0.8, color="#b7cbe6", label="end to end (pre + model + post)")
    ax.barh(y, [r.median_ms for r in results], height=0.5, color="#2b6cb0", label="model only")
    for yi, r in zip(y, results):
        ax.text(max(r.median_ms, r.e2e_median_ms or 0.0) * 1.03, yi, f"{r.median_ms:.1f}", va="center", fontsize=6)
    if max(r.median_ms for r in results) > 20 * min(r.median_ms for r in results):
        ax.set_xscale("log")  # sub-millisecond peers and 100 ms checkpoints on one readable axis
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("median latency, ms (lower is better); bar label = model-only median")
    ax.set_title(title or "featherface bench", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def machine_description() -> dict:
    """CPU model, core count, OS, and the versions of the runtimes measured."""
    from importlib import metadata

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("torch", "onnxruntime", "ai-edge-litert", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "usable_cores": affinity, "os": platform.platform(),
            "python": platform.python_version(), "versions": versions}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker_main()
    elif sys.argv[1:2] == ["--peak-tflite"]:
        _peak_tflite_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit("internal entry point: use `featherface bench` or featherface_mobile.bench.benchmark()")
