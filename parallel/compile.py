"""`torch.compile` per transformer block: fused kernels without one huge graph per model.

Each block is compiled on its own (all blocks share one code object, so the cost is paid once per
distinct shape), as torchtitan does: a whole-model graph would recompile for every pipeline split
and lose FSDP's per-block overlap. Apply after tensor parallelism and before activation
checkpointing (which then wraps the compiled block: checkpointing inside a compiled TP block fails
in torch 2.13) and FSDP. `Module.compile` compiles in place, so parameter names (and checkpoints)
are the same as in eager runs; `torch.compile(block)` would add `_orig_mod.` to them, which the
DCP state-dict helpers do not strip below the root.
"""

from __future__ import annotations

from torch import nn


def apply_compile(model: nn.Module, *, tp: bool = False) -> nn.Module:
    """Compile every block of `model.layers` in place.

    With tensor parallelism the embedding's (sequence-sharded) output is cloned before it enters a
    compiled block: without that copy a compiled block fed by the RowwiseParallel embedding trained
    with an all-zero embedding gradient on CPU (see docs/torch_cpu_notes.md); the clone costs one
    activation copy per step.
    """
    for block in model.layers.values():
        block.compile(fullgraph=True)  # in place: no `_orig_mod.` in parameter names
    if tp and getattr(model, "tok_embeddings", None) is not None:
        model.tok_embeddings.register_forward_hook(lambda module, args, output: output.clone())
    return model
