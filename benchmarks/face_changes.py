"""Which ground-truth faces an artefact scores differently from a reference, on one WIDER subset of the
eval split: the faces behind an AP delta.

For every face of the subset, the best score among each model's detections at IoU >= 0.5 with it
(0: no detection matches), and the best IoU; faces listed by score lost, worst first. On 41 images a
subset has ~100-400 faces, so one face that stops matching moves recall by 0.3-1 point: a delta of
that size can be a single box crossing IoU 0.5.

Usage: python benchmarks/face_changes.py REFERENCE ARTEFACT [ARTEFACT ...] [--subset easy] [--size 640] [--top 10]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from featherface_mobile.detect import detect, read_image
from featherface_mobile.evaluate import EVAL_THRESHOLDS, iou_matrix, load_ground_truth
from featherface_mobile.errors import run_script
from featherface_mobile.paths import require_wider_val
from featherface_mobile.runtime import load_runner
from featherface_mobile.splits import split_images


def face_matches(paths: list[Path], subset: str, size: int) -> list[dict]:
    """One row per face of `subset`: image, index, width, and (score, IoU) of each model's best match."""
    data = require_wider_val()
    gts = load_ground_truth(data)
    runners = [load_runner(p) for p in paths]
    rows = []
    for name in split_images("eval", data):
        img = read_image(data / "images" / name)
        gt = np.asarray(gts[name]["boxes_416_xyxy"], dtype=np.float64).reshape(-1, 4)
        faces = [detect(r, img, size=size, thresholds=EVAL_THRESHOLDS).faces for r in runners]
        for k in gts[name][f"keep_{subset}"]:
            matches = []
            for f in faces:
                iou = iou_matrix(gt[k:k + 1], f.boxes)[0] if len(f) else np.zeros(0)
                hit = iou >= 0.5
                matches.append((float(f.scores[hit].max()) if hit.any() else 0.0, float(iou.max()) if len(iou) else 0.0))
            rows.append({"image": name, "face": int(k), "width": float(gt[k, 2] - gt[k, 0]), "matches": matches})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", type=Path, help="the reference (first), then the artefacts")
    ap.add_argument("--subset", default="easy", choices=("easy", "medium", "hard"))
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    rows = face_matches(a.paths, a.subset, a.size)
    for j, path in enumerate(a.paths[1:], 1):
        lost = sum(r["matches"][0][0] > 0 and r["matches"][j][0] == 0 for r in rows)
        gained = sum(r["matches"][0][0] == 0 and r["matches"][j][0] > 0 for r in rows)
        print(f"{path.name}: {len(rows)} {a.subset} faces; matched by the reference only: {lost}, by it only: {gained}")
        print("image | face | width (416 px) | reference score / IoU | its score / IoU")
        for r in sorted(rows, key=lambda r: r["matches"][j][0] - r["matches"][0][0])[:a.top]:
            (s0, i0), (s1, i1) = r["matches"][0], r["matches"][j]
            print(f"{r['image']} | {r['face']} | {r['width']:.1f} | {s0:.3f} / {i0:.4f} | {s1:.3f} / {i1:.4f}")


if __name__ == "__main__":
    run_script(main)
