"""Golden vectors: raw outputs plus the faces Python decodes from them, for the app ports' tests.

Format: docs/formats.md. Images are real WIDER val images, framed at three aspect ratios so the
letterbox (padding on y, on x, or none) is exercised.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from .detect import detect, read_image
from .errors import FeatherfaceError
from .io import write_json
from .paths import wider_val_dir
from .runtime import Runner, load_runner, model_config

# Full image, then framed taller and wider (grey border) so the letterbox pads on y, then on x.
_CROPS = (
    lambda im: im,
    lambda im: np.pad(im, ((40, 64), (0, 0), (0, 0)), constant_values=90),
    lambda im: np.pad(im, ((0, 0), (72, 24), (0, 0)), constant_values=160),
)


def golden_record(runner: Runner, image_bgr: np.ndarray, image_name: str, size: int) -> dict:
    cfg = model_config(runner)
    det = detect(runner, image_bgr, size=size)
    loc, conf, landms = det.raw
    t = dataclasses.asdict(det_thresholds(cfg))
    return {
        "format": "featherface-golden/1",
        "model": runner.metadata.get("model"),
        "image": image_name,
        "input": {"width": size, "height": size, "layout": "NCHW", "channel_order": "BGR", "mean": list(cfg.mean_bgr)},
        "letterbox": det.letterbox.as_dict(),
        "priors": {"min_sizes": [list(m) for m in cfg.priors.min_sizes], "steps": list(cfg.priors.steps),
                   "variance": list(cfg.priors.variance), "clip": cfg.priors.clip},
        "thresholds": t,
        "num_priors": int(loc.shape[0]),
        "raw": {k: v.astype(np.float32).ravel().astype(np.float64).tolist() for k, v in (("loc", loc), ("conf", conf), ("landms", landms))},
        "faces": [
            {"box": [float(v) for v in b], "score": float(s), "landmarks": [float(v) for v in lm]}
            for b, s, lm in zip(det.faces.boxes, det.faces.scores, det.faces.landmarks)
        ],
    }


def det_thresholds(cfg):
    from .processing import Thresholds

    return Thresholds(score=cfg.score_threshold, nms_iou=cfg.nms_iou)


def _images_with_large_faces(data: Path, n: int) -> list[str]:
    """The n images whose largest ground-truth face is biggest (decoding has faces to match)."""
    import json

    gt = json.loads((data / "gt.json").read_text())

    def largest(rec):
        return max(((b[2] - b[0]) * (b[3] - b[1]) for b in rec["boxes_416_xyxy"]), default=0.0)

    return sorted(gt, key=lambda k: (-largest(gt[k]), k))[:n]


def write_golden(out_dir: str | Path, model: str = "retinaface-mnet025", size: int = 320, images: int = 3,
                 runner: Runner | None = None) -> list[Path]:
    """Write `images` golden files (plus golden/index.json) into `out_dir`; returns the files."""
    data = wider_val_dir()
    if data is None:
        raise FeatherfaceError("golden vectors need the shared WIDER images; set FEATHERFACE_SHARED to the shared folder")
    runner = runner or load_runner(None, model=model)
    out_dir = Path(out_dir)
    paths = [data / "images" / name for name in _images_with_large_faces(data, images)]
    written = []
    for i, p in enumerate(paths):
        image = np.ascontiguousarray(_CROPS[i % len(_CROPS)](read_image(p)))
        rec = golden_record(runner, image, p.name, size)
        written.append(write_json(out_dir / f"{p.stem}.json", rec))
    write_json(out_dir / "index.json", {"format": "featherface-golden-index/1", "files": [w.name for w in written]})
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="retinaface-mnet025")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--images", type=int, default=3)
    a = ap.parse_args()
    for p in write_golden(a.out, a.model, a.size, a.images):
        print(p)


if __name__ == "__main__":
    main()
