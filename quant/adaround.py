"""AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization").

Nearest rounding of each INT8 weight is not what minimises a conv's output error: rounding some
weights up and others down can cancel each other's error on the inputs the conv actually sees.
AdaRound learns, conv by conv in execution order, whether each weight rounds up or down, by
minimising the conv's output error on calibration images (its input as the INT8 network delivers
it, with the convs before it already rounded; its target the float network's output) plus a
regulariser that drives every soft rounding to 0 or 1.

The result is a float model whose conv weights lie on TFLite's per-channel INT8 grid (scale =
max |w| / 127 per output channel, the largest weight of each channel kept at +-127 so the
converter recomputes the same scale): the converter's nearest rounding then reproduces the learned
rounding exactly. Convs are fitted on sampled output positions (im2col rows), so each is a small
regression whatever the resolution.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from featherface_mobile.checkpoint import carry_model_attrs

from . import simulate

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (the paper's values)


@dataclass(frozen=True)
class AdaRoundSettings:
    iterations: int = 1000
    rows_per_image: int = 2048  # sampled output positions of each calibration image
    batch_rows: int = 1024
    reg_weight: float = 0.01
    warmup: float = 0.2  # fraction of iterations before the rounding regulariser starts
    beta: tuple[float, float] = (20.0, 2.0)  # regulariser temperature, annealed over the rest
    lr: float = 1e-3
    seed: int = 0


class _Stop(Exception):
    pass


def _execution_order(model: nn.Module, batch: torch.Tensor) -> list[tuple[str, nn.Conv2d, int, int]]:
    """(name, conv, calls per forward, first output height) of the convs `model` calls as modules, in the order it
    first calls them (shared heads are called once per level; deformable convs' weights are used functionally)."""
    calls: dict[str, list[int]] = {}

    def seen(mod, args, out, name):
        calls.setdefault(name, []).append(out.shape[2])

    handles = [m.register_forward_hook(lambda mod, args, out, n=n: seen(mod, args, out, n))
               for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(batch)
    for h in handles:
        h.remove()
    modules = dict(model.named_modules())
    return [(n, modules[n], len(heights), heights[0]) for n, heights in calls.items()]


def _capture(model: nn.Module, conv: nn.Module, batch: torch.Tensor, *, output: bool, calls: int) -> list[torch.Tensor]:
    """The inputs (as the conv's own pre-hooks leave them) or outputs of `conv`'s `calls` calls on `batch`;
    the forward stops after the last."""
    seen: list[torch.Tensor] = []

    def grab(mod, args, out=None):
        seen.append((out if output else args[0]).detach())
        if len(seen) == calls:
            raise _Stop

    h = conv.register_forward_hook(grab) if output else conv.register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            model(batch)
    except _Stop:
        pass
    finally:
        h.remove()
    return seen


def _rows(conv: nn.Conv2d, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """im2col rows (P, groups, Cin/groups * kh * kw) of `x` at output positions `idx`."""
    cols = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)[0]  # (Cin*k*k, L)
    return cols[:, idx].T.reshape(len(idx), conv.groups, -1)


def _grouped(conv: nn.Conv2d, w: torch.Tensor) -> torch.Tensor:
    return w.reshape(conv.groups, conv.out_channels // conv.groups, -1)  # (G, Cout/G, Cin/G*k*k)


def _apply(conv: nn.Conv2d, rows: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.einsum("pgk,gok->pgo", rows, _grouped(conv, w)).reshape(len(rows), conv.out_channels)


def _soft(v: torch.Tensor) -> torch.Tensor:
    return (torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA).clamp(0, 1)


def round_conv(conv: nn.Conv2d, rows: torch.Tensor, target: torch.Tensor, s: AdaRoundSettings) -> dict:
    """Learn the rounding of `conv`'s weights for `rows` -> `target` (bias removed); sets the weights on the grid."""
    w = conv.weight.detach()
    scale = (w.abs().flatten(1).amax(1) / 127.0).clamp(min=1e-12).reshape(-1, *([1] * (w.dim() - 1)))
    q = w / scale
    low = torch.floor(q)
    rest = (q - low).clamp(1e-4, 1 - 1e-4)
    v = nn.Parameter(-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1))
    opt = torch.optim.Adam([v], lr=s.lr)
    gen = torch.Generator().manual_seed(s.seed)
    warm = int(s.warmup * s.iterations)
    for it in range(s.iterations):
        pick = torch.randint(0, len(rows), (min(s.batch_rows, len(rows)),), generator=gen)
        w_soft = scale * (low + _soft(v)).clamp(-127, 127)
        rec = (_apply(conv, rows[pick], w_soft) - target[pick]).pow(2).sum(1).mean()
        loss = rec
        if it >= warm:
            beta = s.beta[1] + (s.beta[0] - s.beta[1]) * (1 - (it - warm) / max(s.iterations - warm, 1))
            loss = loss + s.reg_weight * (1 - (2 * _soft(v) - 1).abs().pow(beta)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        n = (low + (v >= 0).float()).clamp(-127, 127)
        # The largest weight of each channel stays at +-127: the converter recomputes the scale from it.
        flat, qflat = n.flatten(1), q.flatten(1)
        top = qflat.abs().argmax(1)
        flat[torch.arange(len(top)), top] = torch.round(qflat[torch.arange(len(top)), top])
        learned = scale * flat.reshape_as(w)
        nearest = scale * torch.round(q).clamp(-127, 127)
        err = {k: float((_apply(conv, rows, wq) - target).pow(2).sum(1).mean())
               for k, wq in (("nearest", nearest), ("adaround", learned))}
        conv.weight.data = learned
    return err


@torch.no_grad()
def _targets(conv: nn.Conv2d, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    out = y[0].flatten(1)[:, idx].T
    return out - conv.bias if conv.bias is not None else out


def adaround(model: nn.Module, calibration: list[torch.Tensor], settings: AdaRoundSettings = AdaRoundSettings(), *,
             float_groups: tuple[str, ...] = ()) -> tuple[nn.Module, dict[str, dict]]:
    """A copy of `model` (already BN-folded) whose conv weights carry learned INT8 rounding; and per conv its
    output error (sum of squares per position, on the sampled rows) with nearest and with learned rounding.

    `calibration`: (1, 3, S, S) batches preprocessed exactly as at run time. The convs of `float_groups`
    (quant/float_ops.py) keep their float weights: the export runs them in float.
    """
    from tqdm import tqdm

    from .float_ops import conv_float_modules

    out = copy.deepcopy(model).eval()
    carry_model_attrs(out, model)
    float_convs = dict(model.named_modules())
    order = _execution_order(out, calibration[0])
    keep = conv_float_modules([(n, h) for n, _, _, h in order], calibration[0].shape[2], float_groups)
    sim = simulate.calibrate(simulate.attach(out), calibration)
    gen = torch.Generator().manual_seed(settings.seed)
    report = {}
    for name, conv, calls, _ in tqdm([o for o in order if o[0] not in keep], desc="AdaRound", unit="conv", leave=False):
        rows, targets = [], []
        for b in calibration:
            xs = _capture(out, conv, b, output=False, calls=calls)  # as INT8 delivers it, earlier convs rounded
            ys = _capture(model, float_convs[name], b, output=True, calls=calls)
            for x, y in zip(xs, ys):
                positions = y.shape[2] * y.shape[3]
                idx = torch.randperm(positions, generator=gen)[:max(settings.rows_per_image // calls, 1)]
                rows.append(_rows(conv, x, idx))
                targets.append(_targets(float_convs[name], y, idx))
        original = conv.parametrizations.weight.original
        with torch.no_grad():
            shadow = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                               conv.dilation, conv.groups, bias=False)
            shadow.weight.data = original.detach().clone()
        report[name] = round_conv(shadow, torch.cat(rows), torch.cat(targets), settings)
        with torch.no_grad():
            original.copy_(shadow.weight)
    sim.detach()
    return out, report


def relative_gain(report: dict[str, dict]) -> float:
    """Geometric mean over convs of learned / nearest output error (below 1: AdaRound helped)."""
    ratios = [r["adaround"] / r["nearest"] for r in report.values() if r["nearest"] > 0]
    return math.exp(sum(math.log(r) for r in ratios) / max(len(ratios), 1))
