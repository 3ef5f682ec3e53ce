"""Context parallelism: every sequence split over the `cp` ranks, K and V all-gathered in attention.

Llama 3 trained its 128K-token stages this way (Llama 3 paper §3.3.2): each rank holds 1/cp of the
tokens of every row and computes everything but attention on them alone; attention all-gathers the
keys and values of the whole sequence and lets the local queries attend to them under the same
document mask as one process. All-gathering (instead of passing K/V around a ring) keeps arbitrary
masks easy, and at long context the gather is small next to attention's own work (GQA: 8 K/V heads).

Load balancing: a causal query near the end of a row attends to far more keys than one near its
start, so the row is cut into 2·cp chunks and rank i holds chunks i and 2·cp-1-i (head and tail):
every rank then does the same attention work.

Only two things change inside the model, both from here, both without parameters: each block's
`inner_attention` is wrapped so that K and V are all-gathered before it runs (the all-gather's
backward reduce-scatters their gradients to the ranks that own those tokens), and a forward
pre-hook on the model part passes `key_layout` (the global position of every local query and of
every gathered key, and the keys' document ids), from which the model builds its document mask
for the local queries against all keys. The inputs themselves (tokens, labels, document ids, RoPE
positions) are cut by the caller with `shard_sequence`; the loss is then summed over the batch
and context ranks (pretrain/step.py), and FSDP shards the parameters over dp_shard x cp
(parallel/dims.py), so gradients are averaged over both.
"""

from __future__ import annotations

import torch
import torch.distributed._functional_collectives as funcol
from torch import nn
from torch.distributed.device_mesh import DeviceMesh


def check_cp(cp: int, seq_len: int, tp: int = 1) -> None:
    """Sequence lengths context parallelism can split, checked before any process-group work."""
    if cp <= 1:
        return
    if seq_len % (2 * cp):
        raise ValueError(
            f"parallel.cp={cp} needs data.seq_len={seq_len} divisible by 2*cp={2 * cp} "
            "(each rank holds two equal chunks: head and tail)"
        )
    if tp > 1 and (seq_len // cp) % tp:
        raise ValueError(
            f"parallel.cp={cp} with parallel.tp={tp}: each context rank's {seq_len // cp} tokens "
            "must split over tp for sequence parallelism"
        )


def chunks_of(cp_rank: int, cp: int) -> tuple[int, int]:
    """The two chunks (of 2·cp per row) that context rank `cp_rank` holds: head and tail."""
    return cp_rank, 2 * cp - 1 - cp_rank


def shard_sequence(t: torch.Tensor, cp_rank: int, cp: int, dim: int = 1) -> torch.Tensor:
    """This rank's tokens of `t` along `dim`: chunks i and 2·cp-1-i, concatenated in that order."""
    if cp == 1:
        return t
    chunks = t.chunk(2 * cp, dim)
    head, tail = chunks_of(cp_rank, cp)
    return torch.cat([chunks[head], chunks[tail]], dim)


def local_index(seq_len: int, cp_rank: int, cp: int, device=None) -> torch.Tensor:
    """Global position of each of this rank's tokens (what `shard_sequence` keeps of 0..seq_len-1)."""
    return shard_sequence(torch.arange(seq_len, device=device), cp_rank, cp, dim=0)


def gathered_index(seq_len: int, cp: int, device=None) -> torch.Tensor:
    """Global position of each token after an all-gather over the context ranks (rank-major)."""
    return torch.cat([local_index(seq_len, r, cp, device) for r in range(cp)])


def all_gather_sequence(t: torch.Tensor, mesh: DeviceMesh, dim: int) -> torch.Tensor:
    """Every context rank's `t` concatenated along `dim` (rank order); differentiable.

    The backward reduce-scatters: each rank gets the summed gradient of its own tokens from every
    rank whose queries attended to them.
    """
    return funcol.all_gather_single(t.contiguous(), dim, mesh)


class GatheredKVAttention(nn.Module):
    """Wraps a block's `inner_attention`: the local queries attend to every rank's keys and values."""

    def __init__(self, inner: nn.Module, mesh: DeviceMesh):
        super().__init__()
        self.inner = inner
        self.mesh = mesh

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask) -> torch.Tensor:
        # (batch, heads, seq, head_dim): gather along the sequence.
        k = all_gather_sequence(k, self.mesh, dim=2)
        v = all_gather_sequence(v, self.mesh, dim=2)
        return self.inner(q, k, v, mask)


def _key_layout_hook(mesh: DeviceMesh):
    """Forward pre-hook of a model part: adds `key_layout` for its local queries and gathered keys."""
    cp, cp_rank = mesh.size(), mesh.get_local_rank()

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        doc_ids = kwargs.get("doc_ids", args[1] if len(args) > 1 else None)
        if doc_ids is None:
            raise ValueError("context parallelism needs doc_ids (the document of every local token)")
        if kwargs.get("caches") is not None:
            raise ValueError("context parallelism is for training: decode on one rank (no parallel.cp)")
        seq_len = doc_ids.shape[1] * cp
        kv_doc_ids = funcol.all_gather_single(doc_ids.contiguous(), 1, mesh)
        q_index = local_index(seq_len, cp_rank, cp, doc_ids.device)
        kv_index = gathered_index(seq_len, cp, doc_ids.device)
        return args, {**kwargs, "key_layout": (q_index, kv_index, kv_doc_ids)}

    return hook


def apply_cp(model: nn.Module, mesh: DeviceMesh) -> nn.Module:
    """Make a `pretrain.model.Transformer` (or a pipeline stage of it) attend across `mesh` in place.

    Apply after tensor parallelism (K and V are then this rank's heads) and before torch.compile,
    activation checkpointing and FSDP. The caller feeds each rank its `shard_sequence` of the inputs.
    """
    for block in model.layers.values():
        block.attention.inner_attention = GatheredKVAttention(block.attention.inner_attention, mesh)
    model.register_forward_pre_hook(_key_layout_hook(mesh), with_kwargs=True)
    return model
