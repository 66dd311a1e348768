"""Verification gate: an artefact against PyTorch on real images, raw outputs and decoded faces.

Small composable steps: run both -> per-output error (max/mean abs, cosine) -> faces matched at
IoU 0.5 (precision/recall/F1 at score 0.5) -> pass/fail against the precision's threshold.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from featherface_mobile.checkpoint import load_model
from featherface_mobile.errors import FeatherfaceError
from featherface_mobile.processing import Faces, postprocess
from featherface_mobile.runtime import load_runner

from .common import OUTPUT_NAMES, export_copy, model_inputs, sample_images, torch_outputs
from .formats import get_format

# Decoded-face F1 required for reduced-precision artefacts (score 0.5, IoU 0.5).
F1_THRESHOLDS = {"fp16": 0.99, "int8": 0.97}


# Float32 gates: max |got - ref| <= limit + FP32_RTOL * max |ref|, per output. The relative term
# scales with the output's range: V1's landmark offsets reach ~20-40, and onnxruntime's extended graph
# optimisations (NCHWc kernels, fusions) reorder sums enough to move them by up to 1.6e-4 at 640x640
# (8.5e-5 with ORT_ENABLE_BASIC), which is float32 rounding, not a conversion error.
FP32_RTOL = 1e-5


@dataclass
class OutputError:
    max_abs: float
    mean_abs: float
    cosine: float
    max_abs_beyond_rtol: float = 0.0  # max |got - ref| - FP32_RTOL * max |ref|: what the float32 gate compares


@dataclass
class VerifyReport:
    artefact: str
    format: str
    precision: str
    images: int
    outputs: dict[str, OutputError]
    faces_reference: int
    faces_artefact: int
    precision_at_05: float
    recall_at_05: float
    f1: float
    gate: str
    passed: bool
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        errs = "  ".join(f"{k}: max {v.max_abs:.2e} mean {v.mean_abs:.2e} cos {v.cosine:.6f}" for k, v in self.outputs.items())
        verdict = "PASS" if self.passed else "FAIL"
        return (f"{verdict} {Path(self.artefact).name} [{self.format} {self.precision}] on {self.images} images: {errs}\n"
                f"      faces ref {self.faces_reference} / artefact {self.faces_artefact}: P {self.precision_at_05:.3f} "
                f"R {self.recall_at_05:.3f} F1 {self.f1:.3f}; gate: {self.gate}")


def output_error(ref: np.ndarray, got: np.ndarray) -> OutputError:
    ref, got = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    diff = np.abs(ref - got)
    cos = float(ref @ got / max(np.linalg.norm(ref) * np.linalg.norm(got), 1e-30))
    return OutputError(float(diff.max()), float(diff.mean()), cos, float(diff.max() - FP32_RTOL * np.abs(ref).max()))


def match_faces(ref: Faces, got: Faces, iou: float = 0.5) -> tuple[int, int]:
    """(true positives, count) matching `got` to `ref` greedily by score at IoU >= iou."""
    from featherface_mobile.evaluate import iou_matrix

    if len(ref) == 0 or len(got) == 0:
        return 0, len(got)
    ious = iou_matrix(got.boxes.astype(np.float64), ref.boxes.astype(np.float64))
    used = np.zeros(len(ref), dtype=bool)
    tp = 0
    for i in np.argsort(-got.scores, kind="stable"):
        cand = np.where(~used & (ious[i] >= iou))[0]
        if len(cand):
            used[cand[np.argmax(ious[i, cand])]] = True
            tp += 1
    return tp, len(got)


def verify(
    artefact: str | Path,
    weights: str | Path | None = None,
    *,
    model: str | None = None,
    images: int = 8,
    image_dir: Path | None = None,
    runner=None,
    reference_model=None,
) -> VerifyReport:
    """Compare an exported artefact with the PyTorch model it came from, on real images."""
    artefact = Path(artefact)
    runner = runner or load_runner(artefact)
    meta = runner.metadata
    fmt = get_format(meta.get("format") or artefact.suffix.lstrip("."))
    precision = meta.get("precision", "fp32")
    net = reference_model or load_model(weights, model or meta.get("model"))
    if net.model_name != meta.get("model", net.model_name):
        raise FeatherfaceError(f"artefact was exported from {meta.get('model')} but the weights are {net.model_name}; pass the matching --weights")
    # The reference runs deformable convs in their gather form: the same op as grid_sample, but
    # without grid_sample's coordinate normalisation, whose float32 rounding (~1e-5 per conv, 2e-4
    # at V1's outputs) would otherwise dominate the 1e-4 ONNX gate (tests/test_models.py).
    net = export_copy(net)
    size = runner.input_size or meta.get("input_size", [640])[0]
    samples = sample_images(images, image_dir, split="eval")
    batches = model_inputs(samples, size, net.config.mean_bgr)
    refs, gots = [], []
    tp = n_got = n_ref = 0
    for batch in batches:
        r, g = torch_outputs(net, batch), runner(batch)
        refs.append(r)
        gots.append(g)
        fr = postprocess(*(x[0] for x in r), input_width=size, input_height=size, priors=net.config.priors)
        fg = postprocess(*(x[0] for x in g), input_width=size, input_height=size, priors=net.config.priors)
        t, n = match_faces(fr, fg)
        tp, n_got, n_ref = tp + t, n_got + n, n_ref + len(fr)
    errors = {name: output_error(np.concatenate([r[i].ravel() for r in refs]), np.concatenate([g[i].ravel() for g in gots]))
              for i, name in enumerate(OUTPUT_NAMES)}
    prec = tp / n_got if n_got else float(n_ref == 0)
    rec = tp / n_ref if n_ref else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    if precision == "fp32":
        limit = fmt.fp32_max_abs
        worst = max(e.max_abs_beyond_rtol for e in errors.values())
        passed, gate = worst <= limit, f"max abs error - {FP32_RTOL:.0e} x output range {worst:.2e} <= {limit:.0e}"
    else:
        limit = F1_THRESHOLDS[precision]
        passed, gate = f1 >= limit, f"decoded-face F1 {f1:.3f} >= {limit}"
    return VerifyReport(str(artefact), fmt.name, precision, len(batches), errors, n_ref, n_got, prec, rec, f1, gate, passed)
