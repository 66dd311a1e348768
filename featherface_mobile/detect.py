"""Face detection on images with any runner: read, letterbox, normalise, run, decode."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FeatherfaceError
from .processing import Faces, Letterbox, Thresholds, letterbox, normalize, postprocess
from .runtime import Runner, model_config


def read_image(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 BGR image, or a one-line error for a missing or unreadable file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FeatherfaceError(f"image not found: {path}; check the path")
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise FeatherfaceError(f"cannot read image {path}: not a readable image ({type(e).__name__}); pass a JPEG or PNG file") from None
    return np.ascontiguousarray(rgb[..., ::-1])


@dataclass
class Detection:
    faces: Faces
    letterbox: Letterbox
    input_size: int
    raw: tuple[np.ndarray, np.ndarray, np.ndarray]


def detect(
    runner: Runner,
    image_bgr: np.ndarray,
    *,
    size: int | None = None,
    thresholds: Thresholds | None = None,
) -> Detection:
    """Detect faces in one BGR image. `size` defaults to the runner's fixed size, else 640."""
    cfg = model_config(runner)
    size = runner.input_size or size or cfg.input_size
    if runner.input_size and size != runner.input_size:
        raise FeatherfaceError(f"this artefact has a fixed {runner.input_size}x{runner.input_size} input; drop --size or re-export with --size {size}")
    if size % 32:
        raise FeatherfaceError(f"input size {size} is not a multiple of 32; use e.g. 320, 416 or 640")
    thresholds = thresholds or Thresholds(score=cfg.score_threshold, nms_iou=cfg.nms_iou)
    canvas, lb = letterbox(image_bgr, size)
    raw = runner(normalize(canvas, cfg.mean_bgr))
    loc, conf, landms = (r[0] for r in raw)
    faces = postprocess(loc, conf, landms, input_width=size, input_height=size, priors=cfg.priors,
                        thresholds=thresholds, letterbox_info=lb)
    return Detection(faces, lb, size, (loc, conf, landms))


def draw_faces(image_bgr: np.ndarray, faces: Faces, path: str | Path) -> None:
    """Save the image with boxes, scores and the 5 landmarks drawn (atomically)."""
    from PIL import Image, ImageDraw

    from .io import atomic_path

    im = Image.fromarray(np.ascontiguousarray(image_bgr[..., ::-1]))
    d = ImageDraw.Draw(im)
    colours = [(255, 0, 0), (0, 255, 255), (255, 0, 255), (0, 255, 0), (0, 0, 255)]
    for box, score, lm in zip(faces.boxes, faces.scores, faces.landmarks):
        d.rectangle([float(v) for v in box], outline=(0, 255, 0), width=2)
        d.text((float(box[0]), float(box[1]) - 10), f"{score:.2f}", fill=(255, 255, 255))
        for k in range(5):
            x, y = float(lm[2 * k]), float(lm[2 * k + 1])
            d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colours[k])
    with atomic_path(path) as tmp:
        im.save(tmp, format=Image.registered_extensions().get(Path(path).suffix.lower(), "PNG"))
