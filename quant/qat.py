"""Quantization-aware training hooks (PT2E, torchao) and a short training loop.

Route: BN folding first (`fold_batchnorm`: exact, per output channel, so depthwise, grouped and
deformable convs are all handled the same way; training then runs without batch statistics,
which a batch of one image could not give anyway) -> `torch.export` -> `prepare_qat_pt2e` with
an XNNPACK-style quantizer (INT8 per-channel symmetric weights, per-tensor asymmetric
activations: what TFLite's and XNNPACK's INT8 kernels use) -> training with the RetinaFace
multibox loss and optional distillation from the float model -> `qat_weights` copies the trained
float weights back into the eager model, which every INT8 exporter then converts.

Labels: the "train" split of wider_val_416 (82 images, boxes only); the "eval" split (41) is held
out. Landmark targets come from the float model (the data has no landmark labels).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from featherface_mobile.checkpoint import carry_model_attrs
from featherface_mobile.errors import FeatherfaceError

from .distill import distillation_loss, multibox_loss  # noqa: F401  (re-exported for training scripts)
from .equalize import fold_batchnorm


def _quantizer(float_groups: tuple[str, ...] = ()):
    """XNNPACK's INT8 quantizer; the nodes of `float_groups` (quant/float_ops.py) stay unannotated, so
    QAT trains them in float as the export with `--int8-float` runs them."""
    try:  # executorch's XNNPACK quantizer, when installed
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer, get_symmetric_quantization_config)
    except ImportError:  # the same quantizer as shipped in torchao's testing package
        from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=True))
    return _KeepFloat(quantizer, float_groups) if float_groups else quantizer


class _KeepFloat:
    """A PT2E quantizer that annotates as `inner` does, then drops the annotations of the float groups' nodes."""

    def __init__(self, inner, groups: tuple[str, ...]) -> None:
        self.inner, self.groups = inner, groups

    def annotate(self, model):
        from .float_ops import torch_float_nodes

        model = self.inner.annotate(model)
        keep = torch_float_nodes(model, self.groups)
        for n in model.graph.nodes:
            if n.name in keep:
                n.meta.pop("quantization_annotation", None)
        return model

    def __getattr__(self, name: str):  # transform_for_annotation, validate, callbacks: as `inner`
        return getattr(self.inner, name)


def float_start(model: nn.Module, calibration: list[torch.Tensor] | None = None) -> nn.Module:
    """The float model QAT starts from: BN folded and equalized (the INT8 export's own preparation,
    so re-running it at export leaves the trained weights as they are)."""
    from .equalize import int8_friendly

    return int8_friendly(model, calibration or [])  # carries config, model_name, weights_path


def prepare_qat(model: nn.Module, example: torch.Tensor, float_groups: tuple[str, ...] = ()) -> torch.fx.GraphModule:
    """A PT2E graph of `model` (BN folded, if not already) with per-channel INT8 fake quantization, except
    on the ops of `float_groups`."""
    try:
        from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
    except ImportError:
        raise FeatherfaceError("QAT needs torchao: pip install torchao==0.18.0 --no-deps") from None
    from featherface_mobile.models.deform import set_portable_deform

    folded = set_portable_deform(fold_batchnorm(model), False)
    graph = torch.export.export(folded, (example,), strict=False).module()
    return prepare_qat_pt2e(graph, _quantizer(tuple(float_groups)))


def qat_weights(qat_model: nn.Module, model: nn.Module) -> nn.Module:
    """The BN-folded eager copy of `model` (as passed to `prepare_qat`) with the weights trained in `qat_model`."""
    out = fold_batchnorm(model)
    carry_model_attrs(out, model)
    trained = {k: v for k, v in qat_model.state_dict().items()}
    own = out.state_dict()
    missing = [k for k in own if k not in trained and not k.endswith("num_batches_tracked")]
    if len([k for k in own if k in trained]) < len(own) // 2:
        raise FeatherfaceError(f"QAT graph parameters do not match the model ({len(missing)} missing); "
                               "was it prepared from this model?")
    out.load_state_dict({k: trained.get(k, v) for k, v in own.items()})
    return out


def convert_qat(qat_model: nn.Module) -> nn.Module:
    """The PT2E reference INT8 model (quantize/dequantize ops with the trained ranges)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    return convert_pt2e(qat_model)


@dataclass
class Sample:
    batch: torch.Tensor  # (1, 3, S, S) preprocessed as at run time
    boxes: torch.Tensor  # (M, 4) x1y1x2y2 in input pixels


def labelled_samples(data_dir: str | Path, names: list[str], size: int, mean_bgr) -> list[Sample]:
    """Letterboxed, normalised images of `names` with their boxes moved into input pixels."""
    from featherface_mobile.detect import read_image
    from featherface_mobile.evaluate import load_ground_truth
    from featherface_mobile.processing import letterbox, normalize

    gts = load_ground_truth(data_dir)
    unlabelled = sorted(set(names) - set(gts))
    if unlabelled:
        raise FeatherfaceError(f"{unlabelled[0]} (and {len(unlabelled) - 1} more) has no ground truth in {data_dir}: "
                               "pass names of its labelled images")
    out = []
    for n in names:
        img, lb = letterbox(read_image(Path(data_dir) / "images" / n), size)
        b = np.asarray(gts[n]["boxes_416_xyxy"], dtype=np.float32).reshape(-1, 4)
        valid = np.asarray(gts[n].get("invalid", [0] * len(b)), dtype=bool) == 0 if len(b) else np.zeros(0, bool)
        b = b[valid] if len(valid) == len(b) else b
        b = b * np.array([lb.scale_x, lb.scale_y] * 2, np.float32) + np.array([lb.pad_x, lb.pad_y] * 2, np.float32)
        out.append(Sample(torch.from_numpy(normalize(img, mean_bgr)), torch.from_numpy(b)))
    return out


@dataclass
class QATLog:
    steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)

    def mean(self, first: bool, k: int = 10) -> float:
        part = self.losses[:k] if first else self.losses[-k:]
        return sum(part) / max(len(part), 1)


def train_qat(qat_model: nn.Module, teacher: nn.Module, samples: list[Sample], *, epochs: int = 1,
              steps: int | None = None, lr: float = 1e-5, distill: float = 1.0, labels: bool = True,
              size: int | None = None, seed: int = 0, log=None) -> QATLog:
    """Train in place: multibox loss on the labels (unless `labels=False`) + `distill` x distillation."""
    size = size or samples[0].batch.shape[-1]
    teacher = teacher.eval()
    opt = torch.optim.Adam([p for p in qat_model.parameters() if p.requires_grad], lr=lr)
    rng = random.Random(seed)
    total = steps if steps is not None else epochs * len(samples)
    order: list[int] = []
    result = QATLog()
    t0 = time.perf_counter()
    for step in range(total):
        if not order:
            order = list(range(len(samples)))
            rng.shuffle(order)
        s = samples[order.pop()]
        with torch.no_grad():
            target = teacher(s.batch)
        out = qat_model(s.batch)
        loss = multibox_loss(out, [s.boxes], size, teacher.config, teacher=target) if labels else out[0].new_zeros(())
        if distill:
            loss = loss + distill * distillation_loss(out, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        result.losses.append(loss.item())
        if log and (step + 1) % 10 == 0:
            log(f"step {step + 1}/{total}: loss {sum(result.losses[-10:]) / 10:.4f}")
    result.steps, result.seconds = total, time.perf_counter() - t0
    return result


@dataclass
class QATResult:
    weights: Path  # trained float weights (BN folded), loadable with `load_model(..., model=...)`
    log: QATLog
    ranges: Path | None = None  # learned activation ranges (quant/learned.py), for `export --int8-ranges`
    artefacts: list = field(default_factory=list)
    reference_verify: list = field(default_factory=list)  # each artefact verified against the original weights


def quantization_aware_training(weights: str | Path | None = None, *, model: str | None = None,
                                data: str | Path | None = None, epochs: int = 1, steps: int | None = None,
                                size: int = 640, lr: float = 1e-5, distill: float = 1.0, labels: bool = True,
                                out: str | Path = "exports", formats: tuple[str, ...] = ("tflite",),
                                export_size: int | None = None, int8_float: tuple[str, ...] = (),
                                images: list[str] | None = None, calib: Path | None = None,
                                log=print) -> QATResult:
    """QAT on the train split (or the labelled `images` of `data`), save the trained weights and learned
    ranges, and export INT8 artefacts from them with those ranges (at `export_size`, default `size`; at
    another size they are calibrated; tensors QAT did not observe are calibrated on `calib`, default the
    train split), with the op groups `int8_float` (quant/float_ops.py) kept float, in training as in the
    exports."""
    from .learned import collect
    from featherface_mobile.checkpoint import load_model
    from featherface_mobile.paths import wider_val_dir
    from featherface_mobile.splits import split_images

    from featherface_mobile.export import ExportOptions, export, get_format
    from featherface_mobile.export.formats import check_options, with_options

    export_size = export_size or size
    options = ExportOptions(size=export_size, int8=True, int8_float=tuple(int8_float), calib=calib)
    for fmt in formats:  # an option the format refuses fails now, not after training
        check_options(get_format(fmt), options)
    data = Path(data) if data else wider_val_dir()
    if data is None:
        raise FeatherfaceError("no labelled data: pass --data pointing at wider_val_416 (images/ + gt.json)")
    net = load_model(weights, model)
    samples = labelled_samples(data, images or split_images("train", data), size, net.config.mean_bgr)
    start = float_start(net, [s.batch for s in samples[:32]])
    qat_model = prepare_qat(start, samples[0].batch, tuple(int8_float))
    teacher = start
    log(f"QAT {net.model_name}: {len(samples)} train images at {size}px, {steps or epochs * len(samples)} steps")
    qlog = train_qat(qat_model, teacher, samples, epochs=epochs, steps=steps, lr=lr, distill=distill, labels=labels,
                     size=size, log=log)
    tuned = qat_weights(qat_model, start)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wpath = out / f"{net.model_name}_qat.pth"
    from featherface_mobile.io import atomic_path

    with atomic_path(wpath) as tmp:
        torch.save(_unfolded_state(tuned, net), tmp)
    log(f"trained weights: {wpath} (loss {qlog.mean(True):.3f} -> {qlog.mean(False):.3f}, {qlog.seconds:.0f}s)")
    rpath = out / f"{net.model_name}_qat.ranges.npz"
    learned = collect(qat_model, samples[0].batch)
    learned.save(rpath)
    log(f"learned ranges: {rpath} ({len(learned.ranges)} activation tensors at {size}x{size})")
    result = QATResult(wpath, qlog, rpath)
    if formats:
        if export_size != size:
            log(f"export at {export_size}, not the QAT size {size}: INT8 ranges are calibrated, not the learned ones")
        else:
            options = with_options(options, int8_ranges=rpath)
        res = export(wpath, model=net.model_name, formats=list(formats), options=options, out=out, keep_failed=True,
                     log=log)
        result.artefacts = res.artefacts + res.failed
        from featherface_mobile.export.verify import verify

        for art in result.artefacts:  # the gate that matters: INT8 artefact vs the *original* float model
            result.reference_verify.append(verify(art.path, reference_model=net))
            log("  vs the original float model: " + result.reference_verify[-1].summary())
    return result


def _unfolded_state(folded: nn.Module, original: nn.Module) -> dict[str, torch.Tensor]:
    """State dict in the original checkpoint layout: folded convs, BNs set to identity."""
    sd = original.state_dict()
    tuned = folded.state_dict()
    out = {}
    for k, v in sd.items():
        if k in tuned and tuned[k].shape == v.shape:
            out[k] = tuned[k]
        elif k.endswith("running_mean"):
            out[k] = torch.zeros_like(v)
        elif k.endswith("running_var"):
            out[k] = torch.ones_like(v) - _bn_eps(original, k)  # so that sqrt(var + eps) is exactly 1
        elif k.endswith(".weight") and k[:-7] + ".running_var" in sd:
            out[k] = torch.ones_like(v)  # BN weight
        elif k.endswith(".bias") and k[:-5] + ".running_var" in sd:
            out[k] = torch.zeros_like(v)  # BN bias
        else:
            out[k] = v
    # Folded convs gained a bias the checkpoint layout has no key for: put it into the following BN.
    for k, v in tuned.items():
        if k not in sd and k.endswith(".bias"):
            _assign_bias_to_bn(out, sd, k, v)
    return out


def _bn_eps(model: nn.Module, key: str) -> float:
    return model.get_submodule(key[: -len(".running_var")]).eps


def _assign_bias_to_bn(out: dict, sd: dict, key: str, bias: torch.Tensor) -> None:
    """Put a folded conv's bias into the BN that followed it (next Sequential index, or a sibling `bn`)."""
    parts = key.split(".")[:-1]
    for depth in range(len(parts), 0, -1):
        head, last = parts[: depth - 1], parts[depth - 1]
        candidates = [".".join(head + [str(int(last) + 1)])] if last.isdigit() else []
        candidates.append(".".join(head + ["bn"]))
        for bn in candidates:
            if bn + ".running_var" in sd:
                out[bn + ".bias"] = bias
                return
    raise FeatherfaceError(f"cannot place the folded bias {key} into the checkpoint layout")
