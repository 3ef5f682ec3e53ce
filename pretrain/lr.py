"""Learning-rate schedules as multipliers of the peak LR, wrapped in a (checkpointable) LambdaLR."""

from __future__ import annotations

import functools
import math

import torch

from pretrain.job_config import LRConfig

SCHEDULES = ("cosine", "wsd", "constant")
DECAY_SHAPES = ("linear", "sqrt", "cosine")


def lr_multiplier(step: int, cfg: LRConfig, total_steps: int) -> float:
    """Multiplier for the update with 0-based index `step` out of `total_steps`."""
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
    shape = {"linear": 1 - p, "sqrt": 1 - math.sqrt(p), "cosine": 0.5 * (1 + math.cos(math.pi * p))}
    return floor + (1 - floor) * shape[cfg.decay_shape]


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, cfg: LRConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"lr.schedule={cfg.schedule!r}; expected one of {SCHEDULES}")
    if cfg.decay_shape not in DECAY_SHAPES:
        raise ValueError(f"lr.decay_shape={cfg.decay_shape!r}; expected one of {DECAY_SHAPES}")
    if not 0 <= cfg.min_lr_ratio <= 1:
        raise ValueError(f"lr.min_lr_ratio={cfg.min_lr_ratio} must be in [0, 1]")
    fn = functools.partial(lr_multiplier, cfg=cfg, total_steps=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
