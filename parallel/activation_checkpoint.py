"""Activation checkpointing: trade recomputation in backward for activation memory, per block.

Modes (torchtitan's names):
- `full`: every block keeps only its input; the whole block is recomputed in backward.
- `selective_layer`: every `every`-th block is checkpointed, the others keep their activations.
- `selective_op`: every block, but matmul and attention outputs are saved and only the cheap
  element-wise ops (norms, SiLU, RoPE, residual adds) are recomputed: most of the memory saving
  for a few percent of compute (Korthikanti et al. 2022, "Reducing Activation Recomputation").

Blocks are wrapped with torch's non-reentrant `checkpoint_wrapper`, whose parameter-name prefix the
DCP state-dict helpers strip, so checkpoints stay loadable with or without checkpointing. Apply
after tensor parallelism and `torch.compile` (so the wrapper sits outside the compiled block) and
before FSDP.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

MODES = ("none", "full", "selective_layer", "selective_op")

# Ops whose outputs `selective_op` keeps: the FLOP-heavy ones. Everything else is recomputed.
_SAVE_OPS = {
    torch.ops.aten.mm.default,
    torch.ops.aten.addmm.default,
    torch.ops.aten.bmm.default,
    torch.ops.aten._scaled_dot_product_flash_attention.default,
    torch.ops.aten._scaled_dot_product_efficient_attention.default,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default,
}


def _policy(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if op in _SAVE_OPS else CheckpointPolicy.PREFER_RECOMPUTE


def apply_ac(model: nn.Module, mode: str, every: int = 2) -> nn.Module:
    """Wrap the blocks of `model.layers` in place according to `mode` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"parallel.activation_checkpoint={mode!r}: expected one of {', '.join(MODES)}")
    if every < 1:
        raise ValueError(f"parallel.ac_every={every} must be >= 1")
    if mode == "none":
        return model
    for i, (name, block) in enumerate(list(model.layers.items())):
        if mode == "selective_layer" and i % every:
            continue
        if mode == "selective_op":
            contexts = functools.partial(create_selective_checkpoint_contexts, _policy)
            wrapped = checkpoint_wrapper(block, preserve_rng_state=False, context_fn=contexts)
        else:
            wrapped = checkpoint_wrapper(block, preserve_rng_state=False)
        model.layers[name] = wrapped
    return model
