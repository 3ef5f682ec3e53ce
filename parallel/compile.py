"""`torch.compile` per transformer block: fused kernels without one huge graph per model.

Each block is compiled on its own (all blocks share one code object, so the cost is paid once per
distinct shape), as torchtitan does: a whole-model graph would recompile for every pipeline split
and lose FSDP's per-block overlap. Apply after tensor parallelism and before activation
checkpointing (which then wraps the compiled block: checkpointing inside a compiled TP block fails
in torch 2.13) and FSDP. The `_orig_mod.` prefix it adds to parameter names is stripped by the DCP state-dict
helpers, so checkpoints are interchangeable with eager runs.
"""

from __future__ import annotations

import torch
from torch import nn


def apply_compile(model: nn.Module, *, tp: bool = False) -> nn.Module:
    """Compile every block of `model.layers` in place.

    With tensor parallelism the embedding's (sequence-sharded) output is cloned before it enters a
    compiled block: without that copy a compiled block fed by the RowwiseParallel embedding trained
    with an all-zero embedding gradient on CPU (see TORCH_CPU_NOTES.md); the clone costs one
    activation copy per step.
    """
    for name, block in list(model.layers.items()):
        model.layers[name] = torch.compile(block, fullgraph=True)
    if tp and getattr(model, "tok_embeddings", None) is not None:
        model.tok_embeddings.register_forward_hook(lambda module, args, output: output.clone())
    return model
