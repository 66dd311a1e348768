"""`featherface demo`: the main job end to end on the default model.

Detect faces on a real photo (scikit-image's astronaut), export to every format, verify each artefact
against PyTorch, and print one table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import load_model
from .errors import FeatherfaceError
from .paths import resolve_weights_ref

# The default model is the first whose trained weights are available here: the V2 distilled from V1
# and shipped in the package (featherface_mobile/weights/MODEL_CARD.md), then the shared checkpoints.
# FeatherFace V1 comes last because its INT8 TFLite does not pass the verification gate yet
# (docs/quantization.md): `featherface demo --model featherface-v1` runs it anyway.
DEFAULT_MODELS = ("featherface-v2", "retinaface-mnet025", "featherface-v1")

DEMO_EXPORTS = (  # (format, options)
    ("onnx", {}),
    ("tflite", {}),
    ("tflite", {"fp16": True}),
    ("tflite", {"int8": True}),
    ("coreml", {}),
)


def default_weights(model: str | None = None) -> tuple[str, Path]:
    from .models import get_spec, list_models

    if model is not None and not (get_spec(model).default_weights and resolve_weights_ref(get_spec(model).default_weights)):
        raise FeatherfaceError(f"{model} has no trained weights here; choose one of: {', '.join(DEFAULT_MODELS[1:])}")
    for name in (model,) if model else DEFAULT_MODELS:
        if name in list_models() and get_spec(name).default_weights:
            path = resolve_weights_ref(get_spec(name).default_weights)
            if path is not None:
                return name, path
    raise FeatherfaceError("no trained weights found: set FEATHERFACE_SHARED to the shared folder")


def demo_image() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., ::-1])


@dataclass
class DemoRow:
    artefact: str
    format: str
    precision: str
    kbytes: float
    export_s: float
    passed: bool
    gate: str


def run_demo(out: str | Path = "demo_out", *, model: str | None = None, size: int = 640, log=print) -> list[DemoRow]:
    from .detect import detect, draw_faces
    from .export import ExportOptions, export
    from .runtime import TorchRunner

    out = Path(out)
    name, weights = default_weights(model)
    model = load_model(weights, name)
    log(f"model {name} ({sum(p.numel() for p in model.parameters()):,} parameters) from {weights}")
    image = demo_image()
    det = detect(TorchRunner(model, metadata={"model": name}), image, size=size)
    draw_faces(image, det.faces, out / "astronaut_faces.jpg")
    log(f"detect: {len(det.faces)} face(s) on the astronaut photo; drawn to {out / 'astronaut_faces.jpg'}")
    for f in det.faces.to_list():
        log(f"  score {f['score']:.3f} box {f['box']}")
    rows = []
    for fmt, opts in DEMO_EXPORTS:
        res = export(weights, model=name, formats=[fmt], options=ExportOptions(size=size, **opts), out=out,
                     keep_failed=True, log=lambda *_: None)
        for art in res.artefacts + res.failed:
            rows.append(DemoRow(art.path.name, art.format, art.precision, art.bytes / 1024, art.seconds,
                                art.passed, art.verify.gate if art.verify else "not verified"))
    log(f"\n{'artefact':<44} {'KB':>6} {'export s':>8}  verify")
    for r in rows:
        log(f"{r.artefact:<44} {r.kbytes:>6.0f} {r.export_s:>8.1f}  {'PASS' if r.passed else 'FAIL'} ({r.gate})")
    return rows
