"""Grad-norm clipping and seeding that stay correct when parameters are DTensors; tied weights."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor


def is_tied(model: torch.nn.Module) -> bool:
    """Whether the output projection shares the embedding's Parameter (a tied model part)."""
    emb, out = getattr(model, "tok_embeddings", None), getattr(model, "output", None)
    return emb is not None and out is not None and out.weight is emb.weight


@torch.no_grad()
def clip_grad_norm_(
    parameters: Iterable[torch.nn.Parameter],
    max_norm: float,
    norm_type: float = 2.0,
    pp_group: dist.ProcessGroup | None = None,
) -> torch.Tensor:
    """Clip gradients to `max_norm` (<= 0 disables clipping) and return the total norm.

    With FSDP/TP the grads are DTensors: the per-shard norms are reduced over their mesh by
    `full_tensor()`. With a pipeline each rank holds other layers, so the stages' norms are
    combined over `pp_group` (sum of p-th powers, or max for the inf-norm). Every rank then has the
    same global norm and scales by the same factor.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads, norm_type=norm_type) if grads else torch.zeros(())
    if isinstance(total, DTensor):
        total = total.full_tensor()
    if pp_group is not None:
        if math.isinf(norm_type):
            dist.all_reduce(total, op=dist.ReduceOp.MAX, group=pp_group)
        else:
            total = total**norm_type
            dist.all_reduce(total, op=dist.ReduceOp.SUM, group=pp_group)
            total = total ** (1.0 / norm_type)
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(grads, max_norm, total)
    return total


def set_determinism(seed: int, *, deterministic: bool) -> None:
    """Seed every RNG the same on all ranks (model init must agree before sharding)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
