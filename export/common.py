"""What every format shares: the metadata dict, export-ready model copies, calibration images."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

import featherface_mobile
from featherface_mobile.detect import read_image
from featherface_mobile.errors import FeatherfaceError
from featherface_mobile.models.deform import set_portable_deform
from featherface_mobile.processing import Thresholds, letterbox, normalize
from featherface_mobile.paths import wider_val_dir

OUTPUT_NAMES = ("loc", "conf", "landms")


def export_copy(model: nn.Module, *, native_deform: bool = False) -> nn.Module:
    """An eval-mode copy whose deformable convs use the portable gather form (or ONNX DeformConv)."""
    m = copy.deepcopy(model).eval()
    for attr in ("config", "model_name"):
        setattr(m, attr, getattr(model, attr))
    return set_portable_deform(m, True, native_onnx=native_deform)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(p.relative_to(path).as_posix().encode())
            h.update(p.read_bytes())
    else:
        h.update(path.read_bytes())
    return h.hexdigest()


def artefact_metadata(model: nn.Module, size: int, precision: str, fmt: str, layout: str, weights: str | None) -> dict:
    """One metadata dict, embedded by every format and copied into the package manifest."""
    cfg = model.config
    return {
        "model": model.model_name,
        "version": featherface_mobile.__version__,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "format": fmt,
        "precision": precision,
        "input_size": [size, size],
        "input_layout": layout,
        "channel_order": "BGR",
        "mean": list(cfg.mean_bgr),
        "priors": {"min_sizes": [list(m) for m in cfg.priors.min_sizes], "steps": list(cfg.priors.steps),
                   "variance": list(cfg.priors.variance), "clip": cfg.priors.clip},
        "outputs": list(OUTPUT_NAMES),
        "conf_softmax": True,
        "thresholds": dataclasses.asdict(Thresholds(score=cfg.score_threshold, nms_iou=cfg.nms_iou)),
        "weights_sha256": sha256(Path(weights)) if weights and Path(weights).is_file() else None,
    }


def sample_images(count: int, directory: Path | None = None, split: str = "train") -> list[tuple[str, np.ndarray]]:
    """Real images for calibration/verification: `directory`, else the shared WIDER split, else skimage's astronaut."""
    if directory is not None:
        directory = Path(directory)
        if not directory.is_dir():
            raise FeatherfaceError(f"calibration folder not found: {directory}; pass a folder of JPEG/PNG images")
        paths = sorted(p for p in directory.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not paths:
            raise FeatherfaceError(f"no .jpg/.png images in {directory}; pass a folder of real images")
        return [(p.name, read_image(p)) for p in paths[:count]]
    data = wider_val_dir()
    if data is not None:
        from featherface_mobile.splits import split_images

        names = split_images(split, data)
        return [(n, read_image(data / "images" / n)) for n in names[:count]]
    try:
        from skimage import data as skdata
    except ImportError:
        raise FeatherfaceError("no real images available: pass --calib DIR or set FEATHERFACE_SHARED") from None
    return [("astronaut", np.ascontiguousarray(skdata.astronaut()[..., ::-1]))]


def model_inputs(images: list[tuple[str, np.ndarray]], size: int, mean) -> list[np.ndarray]:
    """Letterboxed, normalised NCHW float32 batches of one, exactly as at run time."""
    return [normalize(letterbox(img, size)[0], mean) for _, img in images]


def torch_outputs(model: nn.Module, batch: np.ndarray) -> tuple[np.ndarray, ...]:
    with torch.inference_mode():
        return tuple(o.numpy() for o in model(torch.from_numpy(batch)))
