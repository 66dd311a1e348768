"""`featherface train`: train any registered model, optionally distilled from a trained teacher.

Loss per batch: (1 - alpha) x RetinaFace's multibox loss on the labels (boxes matched to anchors at
IoU 0.35, hard negatives 3:1, smooth-L1 boxes and landmarks) + alpha x distillation from the
teacher's outputs on the same augmented batch and the same priors (scores by KL at temperature T,
boxes and landmarks by smooth-L1 weighted by the teacher's face probability). The defaults
T = 4, alpha = 0.7 are the design seeds'.

Labels: the "train" split of wider_val_416 (featherface_mobile/splits.json; the "eval" split is
never seen). Its boxes carry no landmarks: the teacher's detections on the un-augmented image give
landmarks to the faces they match (IoU >= 0.5), and faces the teacher finds with a score of at
least `pseudo_score` where no labelled face is are added as labels (pseudo-labels).

Runs are resumable: `out/last.pt` holds model, EMA, optimizer and step every `save_every` steps
and when `max_minutes` runs out; the same command continues from it. Batches depend only on
(seed, step), so a run split into parts sees the same data as one uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .augment import FaceSample, augment, keep_visible, mosaic
from .errors import FeatherfaceError

CHECKPOINT = "last.pt"
BEST = "best.pth"


@dataclass
class TrainConfig:
    model: str
    out: str
    teacher: str | None = None  # teacher checkpoint (None: plain supervised training)
    teacher_model: str | None = None
    init: str = "retinaface"  # backbone: "retinaface", "imagenet", "none" or a checkpoint path
    data: str | None = None  # wider_val_416 (default: the shared one)
    size: int = 320  # training crop
    batch: int = 8
    steps: int = 6000
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup: int = 200
    temperature: float = 4.0
    alpha: float = 0.7
    pseudo_score: float = 0.7
    mosaic: float = 0.3  # probability that a batch element is a 2x2 mosaic
    ema: float = 0.999
    eval_every: int = 500  # 0: never evaluate (best.pth is then the last EMA)
    train_images: int | None = None  # use only the first N images of the train split
    save_every: int = 100
    eval_size: int = 416
    seed: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TrainState:
    step: int = 0
    history: list[dict] = field(default_factory=list)  # {"step", "loss", "ap": {...}} at each evaluation
    losses: list[float] = field(default_factory=list)  # every step's loss
    best_score: float = -1.0
    seconds: float = 0.0


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 2% of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def labelled_faces(data_dir: Path, names: list[str], teacher: nn.Module | None, pseudo_score: float) -> list[FaceSample]:
    """Images of `names` with their valid boxes, landmarks from the teacher, and pseudo-labels."""
    from .detect import detect, read_image
    from .evaluate import iou_matrix, load_ground_truth
    from .processing import Thresholds
    from .runtime import TorchRunner

    gts = load_ground_truth(data_dir)
    runner = TorchRunner(teacher) if teacher is not None else None
    out = []
    for n in names:
        img = read_image(Path(data_dir) / "images" / n)
        g = gts[n]
        boxes = np.asarray(g["boxes_416_xyxy"], np.float32).reshape(-1, 4)
        invalid = np.asarray(g.get("invalid", [0] * len(boxes)), bool).reshape(-1)
        boxes = boxes[~invalid] if len(invalid) == len(boxes) else boxes
        lms = np.zeros((len(boxes), 10), np.float32)
        has = np.zeros(len(boxes), bool)
        if runner is not None:
            faces = detect(runner, img, size=img.shape[1], thresholds=Thresholds(score=0.3)).faces
            if len(faces) and len(boxes):
                iou = iou_matrix(boxes, faces.boxes)
                best = iou.argmax(1)
                has = iou[np.arange(len(boxes)), best] >= 0.5
                lms[has] = faces.landmarks[best[has]]
                extra = (iou.max(0) < 0.3) & (faces.scores >= pseudo_score)
            else:
                extra = faces.scores >= pseudo_score
            boxes = np.concatenate([boxes, faces.boxes[extra]])
            lms = np.concatenate([lms, faces.landmarks[extra]])
            has = np.concatenate([has, np.ones(int(extra.sum()), bool)])
        out.append(FaceSample(img, boxes, lms, has))
    return out


def make_batch(samples: list[FaceSample], cfg: TrainConfig, step: int, mean_bgr) -> tuple[torch.Tensor, list[FaceSample]]:
    """The batch of `step`: a pure function of (seed, step), normalised as at run time."""
    from .processing import normalize

    rng = np.random.default_rng([cfg.seed, step])
    items = []
    for _ in range(cfg.batch):
        if rng.random() < cfg.mosaic:
            s = mosaic([samples[i] for i in rng.integers(0, len(samples), 4)], cfg.size, rng)
        else:
            s = augment(samples[int(rng.integers(0, len(samples)))], cfg.size, rng)
        items.append(keep_visible(s))
    return torch.from_numpy(np.concatenate([normalize(s.image, mean_bgr) for s in items])), items


def batch_loss(student: nn.Module, teacher: nn.Module | None, x: torch.Tensor, items: list[FaceSample],
               cfg: TrainConfig) -> torch.Tensor:
    from .quant.distill import distillation_loss, multibox_loss

    out = student(x)
    t_out = None
    if teacher is not None:
        with torch.no_grad():
            t_out = teacher(x)
    hard = multibox_loss(out, [torch.from_numpy(s.boxes) for s in items], cfg.size, student.config, teacher=t_out,
                         landmarks=[torch.from_numpy(s.landmarks) for s in items],
                         has_landmarks=[torch.from_numpy(s.has_landmarks) for s in items])
    if t_out is None:
        return hard
    soft = distillation_loss(out, t_out, temperature=cfg.temperature)
    return (1 - cfg.alpha) * hard + cfg.alpha * soft


def ema_decay(cfg: TrainConfig, step: int) -> float:
    """Ramped EMA decay (1 + step) / (10 + step), capped at `cfg.ema`: the average spans about a tenth
    of the steps so far, so the poor early weights leave it quickly (a fixed 0.999 from the start
    kept 45% of the step-200 weights at step 1000, and scored near zero AP)."""
    return min(cfg.ema, (1 + step) / (10 + step))


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(decay).add_(m.detach(), alpha=1 - decay)
            else:
                e.copy_(m)


def evaluate_model(model: nn.Module, data_dir: Path, size: int) -> dict[str, float]:
    from .evaluate import evaluate
    from .runtime import TorchRunner
    from .splits import split_images

    was = model.training
    model.eval()
    try:
        res = evaluate(TorchRunner(model, metadata={"model": model.model_name}), data_dir, size=size,
                       images=split_images("eval", data_dir), progress=False)
    finally:
        model.train(was)
    return res.ap


def _build_student(cfg: TrainConfig, shared: Path | None) -> nn.Module:
    from .models import create_model
    from .models.backbone_init import init_backbone

    model = create_model(cfg.model)
    if cfg.init != "none":
        init_backbone(model, cfg.init, shared)
    return model


def _load_resume(path: Path, cfg: TrainConfig) -> dict | None:
    if not path.is_file():
        return None
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    saved = ckpt["config"]
    for key in ("model", "teacher", "size", "batch", "steps", "seed"):
        if saved.get(key) != getattr(cfg, key):
            raise FeatherfaceError(
                f"{path} is a run with {key}={saved.get(key)!r}, not {getattr(cfg, key)!r}; "
                "use the same options to resume, another --out, or --restart"
            )
    return ckpt


def train(cfg: TrainConfig, *, max_minutes: float | None = None, stop_at: int | None = None, restart: bool = False,
          progress: bool = True, log=print) -> TrainState:
    """Train (or resume) until `cfg.steps`, or until `max_minutes` runs out or step `stop_at` is reached
    (both resumable); returns the run's state."""
    from tqdm import tqdm

    from .checkpoint import load_model
    from .io import atomic_path
    from .paths import shared_dir, wider_val_dir
    from .splits import split_images

    data = Path(cfg.data) if cfg.data else wider_val_dir()
    if data is None or not (data / "gt.json").is_file():
        raise FeatherfaceError("no labelled data: pass --data pointing at wider_val_416 (images/ + gt.json) or set FEATHERFACE_SHARED")
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT
    if restart and ckpt_path.exists():
        ckpt_path.unlink()
    resume = _load_resume(ckpt_path, cfg)
    torch.manual_seed(cfg.seed)
    teacher = load_model(cfg.teacher, cfg.teacher_model).eval() if cfg.teacher else None
    student = _build_student(cfg, shared_dir())
    ema = _build_student(dataclasses.replace(cfg, init="none"), None)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = TrainState()
    if resume is not None:
        student.load_state_dict(resume["model"])
        ema.load_state_dict(resume["ema"])
        opt.load_state_dict(resume["optimizer"])
        state = TrainState(**resume["state"])
        log(f"resuming {cfg.model} from step {state.step} ({ckpt_path})")
    else:
        ema.load_state_dict(student.state_dict())
    names = split_images("train", data)[: cfg.train_images]
    samples = labelled_faces(data, names, teacher, cfg.pseudo_score)
    n_pseudo = sum(int(s.has_landmarks.sum()) for s in samples)
    log(f"train {cfg.model}: {len(samples)} images, {sum(len(s.boxes) for s in samples)} faces "
        f"({n_pseudo} with teacher landmarks), teacher {cfg.teacher or 'none'}, {cfg.steps} steps of {cfg.batch} at {cfg.size}px")
    student.train()
    deadline = time.monotonic() + max_minutes * 60 if max_minutes else None
    out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        with atomic_path(ckpt_path) as tmp:
            torch.save({"config": cfg.as_dict(), "model": student.state_dict(), "ema": ema.state_dict(),
                        "optimizer": opt.state_dict(), "state": dataclasses.asdict(state)}, tmp)

    def evaluate_and_keep_best() -> None:
        ap = evaluate_model(ema, data, cfg.eval_size)
        score = sum(ap.values()) / len(ap)
        recent = state.losses[-cfg.eval_every:]
        state.history.append({"step": state.step, "loss": sum(recent) / max(len(recent), 1), "ap": ap})
        if score > state.best_score:
            state.best_score = score
            with atomic_path(out / BEST) as tmp:
                torch.save(ema.state_dict(), tmp)
        log(f"step {state.step}: eval AP easy/medium/hard {ap['easy']:.4f}/{ap['medium']:.4f}/{ap['hard']:.4f}"
            f"{' (best)' if score == state.best_score else ''}")

    bar = tqdm(total=cfg.steps, initial=state.step, desc=f"train {cfg.model}", unit="step", disable=not progress)
    t0 = time.perf_counter()
    start_seconds = state.seconds
    try:
        while state.step < min(cfg.steps, stop_at or cfg.steps):
            if deadline is not None and time.monotonic() > deadline:
                log(f"time budget of {max_minutes} min used at step {state.step}; run the same command to continue")
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, state.step)
            x, items = make_batch(samples, cfg, state.step, student.config.mean_bgr)
            loss = batch_loss(student, teacher, x, items, cfg)
            if not torch.isfinite(loss):
                raise FeatherfaceError(f"loss became {loss.item()} at step {state.step}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(student.parameters(), 10.0)
            opt.step()
            _ema_update(ema, student, ema_decay(cfg, state.step))
            state.step += 1
            state.losses.append(round(loss.item(), 5))
            state.seconds = start_seconds + time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix(loss=f"{sum(state.losses[-20:]) / len(state.losses[-20:]):.3f}", lr=f"{lr_at(cfg, state.step):.1e}")
            if cfg.eval_every and (state.step % cfg.eval_every == 0 or state.step == cfg.steps):
                evaluate_and_keep_best()
            if state.step % cfg.save_every == 0 or state.step == cfg.steps:
                save()
    finally:
        bar.close()
    if state.step % cfg.save_every:
        save()
    if not cfg.eval_every and state.step == cfg.steps:
        with atomic_path(out / BEST) as tmp:
            torch.save(ema.state_dict(), tmp)
    return state
