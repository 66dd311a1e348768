"""WIDER FACE evaluation (AP at IoU 0.5 on easy/medium/hard) of any artefact on wider_val_416.

Follows the official widerface_evaluate protocol: scores min-max normalised over the whole set,
1000 thresholds, faces outside a subset (or invalid) are ignored: a detection matched to them is
neither a true nor a false positive, and they are not counted as misses. IoU uses the protocol's
+1 pixel convention. Images are evaluated at the size given (416 = the images as they are).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .detect import detect, read_image
from .errors import FeatherfaceError
from .processing import Thresholds
from .runtime import Runner

SUBSETS = ("easy", "medium", "hard")
EVAL_THRESHOLDS = Thresholds(score=0.02, nms_iou=0.4, top_k=5000, keep_top_k=750)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (N,4) and b (M,4), x1y1x2y2, with the WIDER +1 area convention."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1 + 1, 0, None) * np.clip(iy2 - iy1 + 1, 0, None)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def image_pr(pred: np.ndarray, gt: np.ndarray, keep: np.ndarray, iou_thresh: float = 0.5):
    """Per detection (sorted by score): whether it counts as a proposal, and recall so far."""
    proposal = np.ones(len(pred), dtype=np.int64)
    recall = np.zeros(len(gt), dtype=np.int64)
    pred_recall = np.zeros(len(pred), dtype=np.int64)
    if len(gt):
        overlaps = iou_matrix(pred[:, :4], gt)
        for h in range(len(pred)):
            j = int(overlaps[h].argmax())
            if overlaps[h, j] >= iou_thresh:
                if not keep[j]:
                    recall[j] = -1
                    proposal[h] = -1
                elif recall[j] == 0:
                    recall[j] = 1
            pred_recall[h] = int((recall == 1).sum())
    return proposal, pred_recall


def image_pr_curve(pred, proposal, pred_recall, n_thresh: int = 1000) -> np.ndarray:
    info = np.zeros((n_thresh, 2))
    for t in range(n_thresh):
        thresh = 1 - (t + 1) / n_thresh
        idx = np.nonzero(pred[:, 4] >= thresh)[0]
        if len(idx):
            r = idx[-1]
            info[t, 0] = int((proposal[: r + 1] == 1).sum())
            info[t, 1] = pred_recall[r]
    return info


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def average_precision(preds: dict[str, np.ndarray], gts: dict[str, dict], subset: str) -> tuple[float, np.ndarray, np.ndarray]:
    """AP of `preds` (name -> (N,5) x1y1x2y2 score) on one subset; also the PR curve."""
    all_scores = np.concatenate([p[:, 4] for p in preds.values() if len(p)] or [np.zeros(0)])
    lo, hi = (float(all_scores.min()), float(all_scores.max())) if len(all_scores) else (0.0, 1.0)
    total = np.zeros((1000, 2))
    n_faces = 0
    for name, rec in gts.items():
        gt = np.asarray(rec["boxes_416_xyxy"], dtype=np.float64).reshape(-1, 4)
        keep = np.zeros(len(gt), dtype=bool)
        keep[np.asarray(rec[f"keep_{subset}"], dtype=np.int64)] = True
        n_faces += int(keep.sum())
        pred = preds.get(name, np.zeros((0, 5))).astype(np.float64)
        if len(pred) == 0:
            continue
        pred = pred[np.argsort(-pred[:, 4], kind="stable")]
        pred[:, 4] = (pred[:, 4] - lo) / max(hi - lo, 1e-12)
        proposal, pred_recall = image_pr(pred, gt, keep)
        total += image_pr_curve(pred, proposal, pred_recall)
    precision = total[:, 1] / np.maximum(total[:, 0], 1)
    recall = total[:, 1] / max(n_faces, 1)
    return voc_ap(recall, precision), precision, recall


@dataclass
class EvalResult:
    artefact: str
    size: int
    images: int
    ap: dict[str, float]
    curves: dict[str, tuple[list[float], list[float]]] = field(repr=False, default_factory=dict)

    def table(self) -> str:
        head = f"WIDER FACE val subset ({self.images} images, test scale {self.size}x{self.size}, AP at IoU 0.5)"
        rows = "\n".join(f"  {s:<7} {self.ap[s]:.4f}" for s in SUBSETS)
        return f"{head}\n  artefact {self.artefact}\n{rows}"


def load_ground_truth(data_dir: str | Path) -> dict[str, dict]:
    data_dir = Path(data_dir)
    gt_path = data_dir / "gt.json"
    if not gt_path.is_file():
        raise FeatherfaceError(f"no gt.json in {data_dir}; pass the wider_val_416 folder of the shared data with --data")
    return json.loads(gt_path.read_text())


def predict(runner: Runner, data_dir: str | Path, names: list[str], *, size: int | None = None,
            progress: bool = True) -> tuple[dict[str, np.ndarray], int]:
    """name -> (N, 5) x1y1x2y2 score of the faces `runner` finds in each image (at evaluation thresholds); the input size."""
    from tqdm import tqdm

    preds: dict[str, np.ndarray] = {}
    used_size = None
    for name in tqdm(names, desc="eval", disable=not progress, unit="img"):
        img = read_image(Path(data_dir) / "images" / name)
        det = detect(runner, img, size=size or img.shape[1], thresholds=EVAL_THRESHOLDS)
        used_size = det.input_size
        f = det.faces
        preds[name] = np.concatenate([f.boxes, f.scores[:, None]], axis=1) if len(f) else np.zeros((0, 5))
    return preds, used_size or 0


def score(preds: dict[str, np.ndarray], gts: dict[str, dict]) -> tuple[dict[str, float], dict[str, tuple[list, list]]]:
    """AP and PR curve per subset of the detections `preds` on the images of `gts`."""
    ap, curves = {}, {}
    for s in SUBSETS:
        ap[s], prec, rec = average_precision(preds, gts, s)
        curves[s] = (prec.tolist(), rec.tolist())
    return ap, curves


def evaluate(
    runner: Runner,
    data_dir: str | Path,
    *,
    size: int | None = None,
    images: list[str] | None = None,
    progress: bool = True,
) -> EvalResult:
    """Detect on every image of `data_dir` (or the `images` subset) and score easy/medium/hard AP."""
    gts = load_ground_truth(data_dir)
    names = sorted(images if images is not None else gts)
    preds, used_size = predict(runner, data_dir, names, size=size, progress=progress)
    ap, curves = score(preds, {n: gts[n] for n in names})
    return EvalResult(runner.name if not hasattr(runner, "path") else str(runner.path), used_size, len(names), ap, curves)


def plot_pr(result: EvalResult, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    fig, ax = plt.subplots(figsize=(5, 4))
    for s in SUBSETS:
        prec, rec = result.curves[s]
        ax.plot(rec, prec, label=f"{s} AP={result.ap[s]:.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"{Path(result.artefact).name} @ {result.size}px")
    ax.legend()
    ax.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
