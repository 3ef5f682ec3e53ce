"""An exponential moving average (EMA) of the weights, kept during training in any parallel layout.

After each step whose optimizer update was applied and whose number is a multiple of `ema.every`:

    ema = decay * ema + (1 - decay) * weights

Each EMA tensor is an fp32 copy of one parameter with the same placements (an FSDP shard, a TP
split, a pipeline stage's own parameter, or a plain tensor), so the update is one fused lerp over
this rank's local shards: no communication, and one more sharded copy of the parameters in memory
(like one of AdamW's moments). Its keys are the plain model's parameter names, those of
`get_model_state_dict`, so the Checkpointer saves it as `ema` beside `model` and it reshards into any
layout as the model does; `python -m pretrain.average --ema` writes it as a model-only checkpoint.

The optional warm-up (`ema.warmup`) is a function of the step number, not of an update count, so the
EMA tensors are the whole state: a resume in any layout continues exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.tensor import DTensor

from pretrain.job_config import EmaConfig

WRAPPERS = frozenset({"_checkpoint_wrapped_module", "_orig_mod"})
"""Name components that activation checkpointing and torch.compile add; state dicts drop them."""


def state_dict_name(name: str) -> str:
    """A parameter's name in the plain model (as `get_model_state_dict` keys it)."""
    return ".".join(part for part in name.split(".") if part not in WRAPPERS)


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


class WeightEma:
    """The EMA of every parameter of this rank's model parts."""

    def __init__(self, parts: list[nn.Module], cfg: EmaConfig):
        self.cfg = cfg
        self.params: list[nn.Parameter] = []
        self.names: list[list[str]] = []  # a tied parameter has two names, as in the model state
        index: dict[int, int] = {}
        for part in parts:
            for name, p in part.named_parameters(remove_duplicate=False):
                i = index.setdefault(id(p), len(self.params))
                if i == len(self.params):
                    self.params.append(p)
                    self.names.append([])
                self.names[i].append(state_dict_name(name))
        with torch.no_grad():
            self.averages = [p.detach().to(torch.float32, copy=True) for p in self.params]

    def decay_at(self, step: int) -> float:
        """The decay of the update after step `step` (1-based)."""
        if self.cfg.warmup:
            return min(self.cfg.decay, (1 + step) / (10 + step))
        return self.cfg.decay

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the current weights; call after an applied optimizer step."""
        if step % self.cfg.every:
            return
        weight = 1.0 - self.decay_at(step)
        averages = [_local(a) for a in self.averages]
        torch._foreach_lerp_(averages, [_local(p).float() for p in self.params], weight)

    @torch.no_grad()
    def reset(self) -> None:
        """Start over from the current weights (a run without an EMA to restore)."""
        torch._foreach_copy_([_local(a) for a in self.averages], [_local(p) for p in self.params])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """{parameter name: its EMA tensor}, the tensors themselves: DCP loads into them in place."""
        return {name: avg for avg, names in zip(self.averages, self.names, strict=True) for name in names}
