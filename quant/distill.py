"""Training losses shared by the INT8 fine-tune and QAT: distillation from the float model, multibox.

`distillation_loss` needs no labels: the float model's outputs are the targets (scores by KL,
boxes and landmarks by smooth-L1 weighted by the float model's face probability, so anchors that
decide detections count and the background does not). `multibox_loss` is RetinaFace's loss on
labelled boxes (anchor matching at IoU 0.35, hard negative mining 3:1); landmarks come from the
float model, as wider_val_416 has no landmark labels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from featherface_mobile.processing import prior_boxes


def _as_logits(conf: torch.Tensor) -> torch.Tensor:
    """Models return softmax scores in eval mode, logits in training mode; turn either into log-probs."""
    if conf.min() >= 0 and torch.allclose(conf.sum(-1), torch.ones_like(conf[..., 0]), atol=1e-3):
        return conf.clamp(min=1e-6).log()
    return F.log_softmax(conf, dim=-1)


def distillation_loss(student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...], *,
                      box_weight: float = 2.0, landmark_weight: float = 1.0, temperature: float = 1.0) -> torch.Tensor:
    """`temperature` T softens both score distributions (Hinton et al.); the KL term is scaled by T^2
    so its gradients keep their size. T = 1 is the plain KL."""
    s_loc, s_conf, s_lm = student
    t_loc, t_conf, t_lm = (t.detach() for t in teacher)
    t_logp, s_logp = _as_logits(t_conf), _as_logits(s_conf)
    face = t_logp[..., 1].exp()
    if temperature != 1.0:
        t_soft = F.log_softmax(t_logp / temperature, dim=-1)
        kl = (t_soft.exp() * (t_soft - F.log_softmax(s_logp / temperature, dim=-1))).sum(-1) * temperature ** 2
    else:
        kl = (t_logp.exp() * (t_logp - s_logp)).sum(-1)
    # Normalise by the teacher's face mass so images with few faces count as much as crowds.
    w = face + 1e-3
    norm = w.sum().clamp(min=1.0)
    conf_loss = (kl * (1 + 10 * face)).sum() / norm
    loc_loss = (F.smooth_l1_loss(s_loc, t_loc, reduction="none", beta=0.1).sum(-1) * w).sum() / norm
    lm_loss = (F.smooth_l1_loss(s_lm, t_lm, reduction="none", beta=0.1).sum(-1) * w).sum() / norm
    return conf_loss + box_weight * loc_loss + landmark_weight * lm_loss


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter).clamp(min=1e-12)


def encode_boxes(boxes: torch.Tensor, priors: torch.Tensor, variance=(0.1, 0.2)) -> torch.Tensor:
    """Normalised x1y1x2y2 boxes -> the regression targets `decode_boxes` inverts."""
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    sizes = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6)
    return torch.cat([(centers - priors[:, :2]) / (variance[0] * priors[:, 2:]),
                      torch.log(sizes / priors[:, 2:]) / variance[1]], dim=1)


def encode_landmarks(landmarks: torch.Tensor, priors: torch.Tensor, variance=(0.1, 0.2)) -> torch.Tensor:
    """Normalised (P, 10) x,y landmarks -> the regression targets `decode_landmarks` inverts."""
    lm = landmarks.reshape(-1, 5, 2)
    return ((lm - priors[:, None, :2]) / (variance[0] * priors[:, None, 2:])).reshape(-1, 10)


def multibox_loss(student: tuple[torch.Tensor, ...], boxes: list[torch.Tensor], size: int, config, *,
                  teacher: tuple[torch.Tensor, ...] | None = None, iou_threshold: float = 0.35,
                  negatives_per_positive: int = 3, landmarks: list[torch.Tensor] | None = None,
                  has_landmarks: list[torch.Tensor] | None = None) -> torch.Tensor:
    """RetinaFace's multibox loss for a batch: `boxes[i]` (M, 4) x1y1x2y2 in input pixels.

    Landmark targets: `landmarks[i]` (M, 10) input pixels where `has_landmarks[i]` says they are
    known; elsewhere the teacher's per-anchor landmark outputs, when a teacher is given.
    """
    loc, conf, lm = student
    priors = torch.from_numpy(prior_boxes(size, size, config.priors)).to(loc)
    corners = torch.cat([priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], dim=1)
    logp = _as_logits(conf)
    total = loc.new_zeros(())
    for i, gt in enumerate(boxes):
        labels = torch.zeros(len(priors), dtype=torch.long, device=loc.device)
        if len(gt):
            gt = gt.to(loc) / size
            ious = _iou(gt, corners)  # (M, P)
            best_prior = ious.argmax(1)
            best_iou, best_gt = ious.max(0)
            best_iou[best_prior] = 1.0  # every face gets at least its best anchor
            best_gt[best_prior] = torch.arange(len(gt), device=loc.device)
            labels = (best_iou >= iou_threshold).long()
        pos = labels.bool()
        n_pos = int(pos.sum())
        ce = -logp[i].gather(1, labels[:, None])[:, 0]
        neg_ce = ce.detach().clone()
        neg_ce[pos] = -1
        n_neg = min(max(negatives_per_positive * n_pos, 16), len(priors) - n_pos)
        neg = torch.zeros_like(pos)
        neg[neg_ce.topk(n_neg).indices] = True
        loss = ce[pos | neg].sum()
        if n_pos:
            target = encode_boxes(gt[best_gt[pos]], priors[pos], config.priors.variance)
            loss = loss + F.smooth_l1_loss(loc[i][pos], target, reduction="sum")
            lm_target = teacher[2][i][pos].detach() if teacher is not None else None
            if landmarks is not None and len(gt):
                matched = best_gt[pos]
                known = has_landmarks[i].to(loc.device)[matched]
                encoded = encode_landmarks(landmarks[i].to(loc)[matched] / size, priors[pos], config.priors.variance)
                if lm_target is None:
                    lm_target, rows = encoded[known], known
                    loss = loss + F.smooth_l1_loss(lm[i][pos][rows], lm_target, reduction="sum")
                    lm_target = None
                else:
                    lm_target = torch.where(known[:, None], encoded, lm_target)
            if lm_target is not None:
                loss = loss + F.smooth_l1_loss(lm[i][pos], lm_target, reduction="sum")
        total = total + loss / max(n_pos, 1)
    return total / len(boxes)
