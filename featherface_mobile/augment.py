"""Training data: labelled WIDER images with landmarks from a teacher, and the augmentations.

A `FaceSample` is one image with its faces: boxes (x1y1x2y2, image pixels), 5 landmarks per face
(10 values) and a flag saying whether those landmarks are known. wider_val_416 has boxes only; the
teacher's detections supply landmarks for the faces they match and extra faces (pseudo-labels)
where the teacher is confident and no labelled face is.

Augmentations (RetinaFace's recipe plus mosaic) all act on an image and its labels together:
random square crop or zoom-out, horizontal flip with the left/right landmark swap, photometric
jitter, and a 2x2 mosaic of four augmented images. Every random draw comes from the numpy
`Generator` passed in, so a step's batch depends only on (seed, step).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Landmark order: left eye, right eye, nose, left mouth corner, right mouth corner. A flip swaps sides.
FLIP_ORDER = (1, 0, 2, 4, 3)
MEAN_BGR = np.array([104, 117, 123], dtype=np.uint8)


@dataclass
class FaceSample:
    image: np.ndarray  # HxWx3 uint8 BGR
    boxes: np.ndarray  # (N, 4) float32 x1y1x2y2
    landmarks: np.ndarray  # (N, 10) float32 x,y interleaved
    has_landmarks: np.ndarray  # (N,) bool

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.landmarks = np.asarray(self.landmarks, np.float32).reshape(-1, 10)
        self.has_landmarks = np.asarray(self.has_landmarks, bool).reshape(-1)


def _resize(image: np.ndarray, w: int, h: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((w, h), Image.BILINEAR))


def _affine(s: FaceSample, image: np.ndarray, x0: float, y0: float, scale: float, keep: np.ndarray) -> FaceSample:
    """Labels of `s` moved by -(x0, y0) then scaled, restricted to the faces in `keep`."""
    b = (s.boxes[keep] - [x0, y0, x0, y0]) * scale
    lm = (s.landmarks[keep] - [x0, y0] * 5) * scale
    return FaceSample(image, b, lm, s.has_landmarks[keep])


def crop_or_zoom(s: FaceSample, size: int, rng: np.random.Generator,
                 scales=(0.3, 0.45, 0.6, 0.8, 1.0, 1.3, 1.7)) -> FaceSample:
    """A random square window of side `scale x short side`, resized to `size`.

    Windows larger than the image (zoom-out) are filled with the mean colour, which makes faces
    smaller than any in the data; faces are kept when their centre falls inside the window and
    their box is then clipped to it. A window that would keep no face is re-drawn (up to 30 times).
    """
    h, w = s.image.shape[:2]
    centers = (s.boxes[:, :2] + s.boxes[:, 2:]) / 2
    for _ in range(30):
        side = int(rng.choice(scales) * min(w, h))
        x0 = int(rng.integers(min(0, w - side), max(0, w - side) + 1))
        y0 = int(rng.integers(min(0, h - side), max(0, h - side) + 1))
        keep = np.all((centers >= [x0, y0]) & (centers < [x0 + side, y0 + side]), axis=1)
        if keep.any() or not len(s.boxes):
            break
    else:
        side, x0, y0 = min(w, h), (w - min(w, h)) // 2, (h - min(w, h)) // 2
        keep = np.all((centers >= [x0, y0]) & (centers < [x0 + side, y0 + side]), axis=1)
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = MEAN_BGR
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = s.image[sy0:sy1, sx0:sx1]
    out = _affine(s, _resize(canvas, size, size), x0, y0, size / side, keep)
    out.boxes = np.clip(out.boxes, 0, size)
    return out


def flip(s: FaceSample) -> FaceSample:
    """Mirror left-right; landmarks are mirrored and their left/right points swapped."""
    w = s.image.shape[1]
    boxes = s.boxes.copy()
    boxes[:, [0, 2]] = w - s.boxes[:, [2, 0]]
    lm = s.landmarks.reshape(-1, 5, 2)[:, FLIP_ORDER].copy()
    lm[..., 0] = w - lm[..., 0]
    return FaceSample(np.ascontiguousarray(s.image[:, ::-1]), boxes, lm.reshape(-1, 10), s.has_landmarks.copy())


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation jitter (each applied with probability 0.5)."""
    x = image.astype(np.float32)
    if rng.random() < 0.5:
        x += rng.uniform(-32, 32)
    if rng.random() < 0.5:
        x *= rng.uniform(0.5, 1.5)
    if rng.random() < 0.5:
        gray = x @ np.array([0.114, 0.587, 0.299], np.float32)
        x = gray[..., None] + (x - gray[..., None]) * rng.uniform(0.5, 1.5)
    return np.clip(x, 0, 255).astype(np.uint8)


def augment(s: FaceSample, size: int, rng: np.random.Generator) -> FaceSample:
    out = crop_or_zoom(s, size, rng)
    if rng.random() < 0.5:
        out = flip(out)
    out.image = photometric(out.image, rng)
    return out


def mosaic(parts: list[FaceSample], size: int, rng: np.random.Generator) -> FaceSample:
    """Four samples, each augmented at half size, tiled 2x2."""
    half = size // 2
    tiles = [augment(p, half, rng) for p in parts[:4]]
    image = np.empty((size, size, 3), np.uint8)
    boxes, lms, has = [], [], []
    for i, t in enumerate(tiles):
        ox, oy = (i % 2) * half, (i // 2) * half
        image[oy:oy + half, ox:ox + half] = t.image
        boxes.append(t.boxes + [ox, oy, ox, oy])
        lms.append(t.landmarks + [ox, oy] * 5)
        has.append(t.has_landmarks)
    return FaceSample(image, np.concatenate(boxes), np.concatenate(lms), np.concatenate(has))


def keep_visible(s: FaceSample, min_side: float = 4.0) -> FaceSample:
    """Drop faces too small to supervise after resizing (they would only confuse the matcher)."""
    wh = s.boxes[:, 2:] - s.boxes[:, :2]
    keep = np.all(wh >= min_side, axis=1)
    return FaceSample(s.image, s.boxes[keep], s.landmarks[keep], s.has_landmarks[keep])
