"""Learning-rate schedules as multipliers of the peak LR, wrapped in a (checkpointable) LambdaLR.

A training stage may replace the schedule over its own steps with a `Segment` (pretrain/stages.py):
from the schedule's value at the stage's first update to a given end value, e.g. linearly to 0 for
Llama 3's final annealing.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from pretrain.job_config import LRConfig, TrainConfig


def decay(shape: str, p: float) -> float:
    """1 at progress p=0 falling to 0 at p=1: linear, sqrt or cosine."""
    return {"linear": 1 - p, "sqrt": 1 - math.sqrt(p), "cosine": 0.5 * (1 + math.cos(math.pi * p))}[shape]


@dataclass(frozen=True)
class Segment:
    """Updates `first`..`last` (0-based, inclusive) leave the schedule: they go from its value at
    `first` to `end` (a multiplier of the peak, reached exactly at `last`) with `shape`."""

    first: int
    last: int
    shape: str
    end: float


def lr_multiplier(step: int, cfg: LRConfig, total_steps: int, segments: tuple[Segment, ...] = ()) -> float:
    """Multiplier for the update with 0-based index `step` out of `total_steps`."""
    for seg in segments:
        if seg.first <= step <= seg.last:
            start = lr_multiplier(seg.first, cfg, total_steps)
            p = (step - seg.first + 1) / (seg.last - seg.first + 1)
            return seg.end + (start - seg.end) * decay(seg.shape, p)
    warmup = cfg.warmup_steps
    if step < warmup:
        return (step + 1) / (warmup + 1)  # never exactly 0: the first update still moves
    floor = cfg.min_lr_ratio
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total_steps - 1 - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    # wsd: hold the peak, then decay over the last decay_fraction of the run.
    decay_steps = max(1, round(cfg.decay_fraction * total_steps))
    decay_start = max(warmup, total_steps - decay_steps)
    if step < decay_start:
        return 1.0
    p = min(1.0, (step - decay_start + 1) / max(1, total_steps - decay_start))
    return floor + (1 - floor) * decay(cfg.decay_shape, p)


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, cfg: LRConfig, total_steps: int, segments: tuple[Segment, ...] = ()
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule of `cfg` (its names and ranges are checked with the config: job_config)."""
    fn = functools.partial(lr_multiplier, cfg=cfg, total_steps=total_steps, segments=segments)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


def apply_configured_schedule(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR, cfg: TrainConfig
) -> None:
    """After a resume, replace the checkpoint's optimizer settings and peak LR with the config's.

    A restored AdamW keeps the saved betas, eps, weight decay and peak LR in its param groups, and
    the scheduler its saved base LRs; this puts the configured ones back (the step count and the
    moments stay), so the configured schedule applies from the resumed step on.
    """
    decay = [cfg.optim.weight_decay, 0.0]  # build_optimizer's groups: decayed, then not decayed
    for group, weight_decay in zip(optimizer.param_groups, decay, strict=True):
        group.update(betas=tuple(cfg.optim.betas), eps=cfg.optim.eps, weight_decay=weight_decay)
        group["initial_lr"] = cfg.optim.lr
    scheduler.base_lrs = [cfg.optim.lr] * len(optimizer.param_groups)
    for group, fn in zip(optimizer.param_groups, scheduler.lr_lambdas, strict=True):
        group["lr"] = cfg.optim.lr * fn(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
