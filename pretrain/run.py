"""What one training run holds while it trains (`Run`, built by `pretrain.train.build_run`) and
what it reports back (`TrainResult`)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from data_pipeline.tokenizer import AnyTokenizer
from parallel.dims import ParallelDims
from pretrain.checkpoint import Checkpointer
from pretrain.configs import ModelArgs
from pretrain.data import PackedDataset, StepLoader
from pretrain.ema import WeightEma
from pretrain.fault import StepHooks
from pretrain.job_config import TrainConfig
from pretrain.metrics import MetricsLogger
from pretrain.stages import Stage
from pretrain.step import Pipeline


@dataclass
class TrainResult:
    """What a finished run reports back (tests compare these across layouts)."""

    losses: list[float] = field(default_factory=list)
    val_losses: dict[int, float] = field(default_factory=dict)
    evals: dict[int, dict[str, float]] = field(default_factory=dict)
    """metrics.jsonl's `eval/...` keys of every evaluated step."""
    sample: str | None = None


@dataclass
class Run:
    """Everything the step loop uses, built once by `build_run`."""

    cfg: TrainConfig
    dims: ParallelDims
    rank: int
    world_size: int
    device: torch.device
    args: ModelArgs
    parts: list[nn.Module]
    pipe: Pipeline | None
    optimizers: list[torch.optim.Optimizer]
    schedulers: list
    loader: StepLoader
    val_loader: StepLoader | None
    tokenizer: AnyTokenizer | None
    ckpt: Checkpointer
    logger: MetricsLogger
    hooks: StepHooks
    start: int
    """Step of the checkpoint this run resumed from (0: a fresh start)."""
    autocast: Callable = contextlib.nullcontext
    loss_ctx: Callable = contextlib.nullcontext
    step: int = 0
    """The step in progress (for exit.json when something fails)."""
    skipped: int = 0
    """Non-finite steps skipped so far."""
    ema: WeightEma | None = None
    """The EMA of the weights (ema.enabled), updated after each applied optimizer step."""
    plan: list[Stage] = field(default_factory=list)
    """The training stages, resolved (pretrain/stages.py); empty without `stages`."""
    stage_data: dict[str, PackedDataset] = field(default_factory=dict)
    """Every stage's packed directories, opened by preflight."""
    stage: Stage | None = None
    """The stage in progress (`enter_stage` sets it)."""

    @functools.cached_property
    def params(self) -> list[nn.Parameter]:
        """Every parameter of this rank's parts (listed once: the loop clips them every step)."""
        return [q for part in self.parts for q in part.parameters()]

    def close(self) -> None:
        self.ckpt.close()
        self.logger.close()
