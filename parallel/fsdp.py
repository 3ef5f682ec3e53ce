"""FSDP2 (`fully_shard`) over the data-parallel mesh: one unit per block, then the root."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

from parallel.utils import is_tied


def apply_fsdp(
    model: nn.Module,
    mesh: DeviceMesh,
    *,
    param_dtype: torch.dtype = torch.float32,
    reduce_dtype: torch.dtype = torch.float32,
    reshard_after_forward: bool = True,
    cpu_offload: bool = False,
) -> nn.Module:
    """Shard `model` in place. A 2-D mesh (replicate, shard) gives HSDP.

    Each block is its own unit so only one block's full parameters live at a time; the embedding
    and the final norm+output are units of their own because they are the largest tensors of
    small-vocab-heavy models. The last unit is not resharded after forward: backward needs it
    straight away. A tied embedding and output are one Parameter, which one unit must own: they
    stay in the root unit (with the norm), which FSDP keeps unsharded from forward to backward.
    `cpu_offload` keeps the sharded parameters, gradients and optimizer state in
    host memory (the optimizer step then runs on the CPU).
    """
    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    # Pinned host memory speeds up the copies to an accelerator; there is nothing to pin for on CPU.
    pin = mesh.device_type != "cpu"
    offload = CPUOffloadPolicy(pin_memory=pin) if cpu_offload else OffloadPolicy()
    kw = {"mesh": mesh, "mp_policy": mp, "offload_policy": offload}
    tied = is_tied(model)
    if getattr(model, "tok_embeddings", None) is not None and not tied:
        fully_shard(model.tok_embeddings, reshard_after_forward=reshard_after_forward, **kw)
    for block in model.layers.values():
        fully_shard(block, reshard_after_forward=reshard_after_forward, **kw)
    if getattr(model, "norm", None) is not None and getattr(model, "output", None) is not None and not tied:
        fully_shard([model.norm, model.output], reshard_after_forward=False, **kw)
    fully_shard(model, reshard_after_forward=reshard_after_forward, **kw)
    return model
