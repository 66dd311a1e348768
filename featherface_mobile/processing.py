"""Pre- and post-processing every runtime reuses: normalisation, letterbox, priors, decoding, NMS.

These functions are the single definition of how model outputs become faces. The Kotlin and Swift
ports in the sample apps are tested against golden vectors written from them (docs/golden_format.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from math import ceil

import numpy as np

from .models.registry import PriorConfig


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed into the model input: resized by (sx, sy), then offset by (pad_x, pad_y)."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    image_width: int
    image_height: int

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Map (..., 2k) interleaved x,y input coordinates back to original image coordinates."""
        out = np.array(xy, dtype=np.float32, copy=True)
        out[..., 0::2] = (out[..., 0::2] - self.pad_x) / self.scale_x
        out[..., 1::2] = (out[..., 1::2] - self.pad_y) / self.scale_y
        return out

    def as_dict(self) -> dict:
        return {"scale_x": self.scale_x, "scale_y": self.scale_y, "pad_x": self.pad_x, "pad_y": self.pad_y,
                "image_width": self.image_width, "image_height": self.image_height}


def letterbox(image_bgr: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect ratio into a size x size canvas (centred, zero border = mean after normalise).

    An image already size x size is passed through untouched (scale 1, no padding).
    """
    from PIL import Image

    h, w = image_bgr.shape[:2]
    if (w, h) == (size, size):
        return image_bgr, Letterbox(1.0, 1.0, 0, 0, w, h)
    scale = min(size / w, size / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = np.asarray(Image.fromarray(np.ascontiguousarray(image_bgr[..., ::-1])).resize((nw, nh), Image.BILINEAR))[..., ::-1]
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    canvas = np.empty((size, size, 3), dtype=np.uint8)
    canvas[:] = np.array([104, 117, 123], dtype=np.uint8)  # mean colour: zero after normalisation
    canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] = resized
    return canvas, Letterbox(nw / w, nh / h, pad_x, pad_y, w, h)


def normalize(image_bgr: np.ndarray, mean_bgr=(104.0, 117.0, 123.0), layout: str = "NCHW") -> np.ndarray:
    """uint8 HxWx3 BGR -> float32 batch of one, mean subtracted, in `layout`."""
    x = image_bgr.astype(np.float32) - np.asarray(mean_bgr, dtype=np.float32)
    x = x[None]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if layout == "NCHW" else x)


def prior_boxes(width: int, height: int, priors: PriorConfig = PriorConfig()) -> np.ndarray:
    """(N, 4) priors as (cx, cy, w, h), normalised by the input size; level by level, row-major, sizes inner."""
    boxes = []
    for sizes, step in zip(priors.min_sizes, priors.steps):
        fh, fw = ceil(height / step), ceil(width / step)
        for i, j in product(range(fh), range(fw)):
            for s in sizes:
                boxes.append(((j + 0.5) * step / width, (i + 0.5) * step / height, s / width, s / height))
    out = np.asarray(boxes, dtype=np.float32)
    return np.clip(out, 0.0, 1.0) if priors.clip else out


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variance=(0.1, 0.2)) -> np.ndarray:
    """Regression (N, 4) -> boxes (N, 4) as normalised x1, y1, x2, y2."""
    centers = priors[:, :2] + loc[:, :2] * variance[0] * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * variance[1])
    return np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)


def decode_landmarks(landms: np.ndarray, priors: np.ndarray, variance=(0.1, 0.2)) -> np.ndarray:
    """Regression (N, 10) -> 5 landmarks (N, 10) as normalised x, y pairs."""
    pts = landms.reshape(-1, 5, 2) * variance[0] * priors[:, None, 2:] + priors[:, None, :2]
    return pts.reshape(-1, 10)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS; indices kept, by descending score (ties: lower index first). IoU without +1."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


@dataclass(frozen=True)
class Thresholds:
    score: float = 0.5
    nms_iou: float = 0.4
    top_k: int = 5000
    keep_top_k: int = 750


@dataclass
class Faces:
    """Detections in original image pixels: boxes (N,4) x1y1x2y2, scores (N,), landmarks (N,10)."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def to_list(self) -> list[dict]:
        return [
            {"box": [round(float(v), 3) for v in b], "score": round(float(s), 5),
             "landmarks": [round(float(v), 3) for v in lm]}
            for b, s, lm in zip(self.boxes, self.scores, self.landmarks)
        ]


def postprocess(
    loc: np.ndarray,
    conf: np.ndarray,
    landms: np.ndarray,
    *,
    input_width: int,
    input_height: int,
    priors: PriorConfig = PriorConfig(),
    thresholds: Thresholds = Thresholds(),
    letterbox_info: Letterbox | None = None,
) -> Faces:
    """Raw outputs of one image ((N,4), (N,2) softmax scores, (N,10)) -> faces in image pixels.

    Steps: score = conf[:,1]; keep score > threshold; sort by score (stable); top_k; decode;
    scale by input size; NMS; keep_top_k; undo the letterbox.
    """
    scores = conf[:, 1].astype(np.float32)
    idx = np.nonzero(scores > thresholds.score)[0]
    idx = idx[np.argsort(-scores[idx], kind="stable")][: thresholds.top_k]
    anchors = prior_boxes(input_width, input_height, priors)[idx]
    scale = np.array([input_width, input_height] * 5, dtype=np.float32)
    boxes = decode_boxes(loc[idx].astype(np.float32), anchors, priors.variance) * scale[:4]
    lms = decode_landmarks(landms[idx].astype(np.float32), anchors, priors.variance) * scale
    keep = nms(boxes, scores[idx], thresholds.nms_iou)[: thresholds.keep_top_k]
    boxes, lms, kept_scores = boxes[keep], lms[keep], scores[idx][keep]
    if letterbox_info is not None:
        boxes, lms = letterbox_info.to_image(boxes), letterbox_info.to_image(lms)
    return Faces(boxes.astype(np.float32), kept_scores, lms.astype(np.float32))
