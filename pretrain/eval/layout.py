"""Where this rank's share of the model sits, and one forward pass through the pipeline stages.

Evaluation reuses the training layouts (`parallel/`): data-parallel ranks score different batches,
tensor-parallel ranks the same batch on their shards (`apply_tp`, replicated logits), pipeline
ranks hold stages cut by `split_layers`/`stage_module`. Pipeline stages are run forward one after
another here, hidden states passed on with send/recv, rather than through a
`torch.distributed.pipelining` schedule: a schedule allocates its receive buffers for the shapes of
its first step, and evaluation batches change length every step. Stages may be placed as any
schedule places them (looped, V-shaped): `stage_ranks` says which pipeline rank runs each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor

from parallel.dims import ParallelDims
from parallel.pipeline import split_layers, stage_ids, stage_module, stages_per_rank
from parallel.tensor_parallel import apply_tp, check_tp
from pretrain.configs import ModelArgs
from pretrain.eval.batching import PREFIX_DOC, Batch

_DTYPES = [torch.float32, torch.bfloat16, torch.float16]


@dataclass
class EvalLayout:
    """This rank's model parts and its place among the data, tensor and pipeline ranks."""

    parts: list[nn.Module]
    """One `Transformer` (or pipeline stage of one) per stage this rank holds, in `stage_ids` order."""
    stage_ids: list[int] = field(default_factory=lambda: [0])
    stage_ranks: list[int] = field(default_factory=lambda: [0])
    """The pipeline rank of every stage, indexed by stage id."""
    pp_rank: int = 0
    pp_group: dist.ProcessGroup | None = None
    dp_rank: int = 0
    dp_size: int = 1
    tp: int = 1
    tp_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def args(self) -> ModelArgs:
        return self.parts[0].args

    @property
    def has_last(self) -> bool:
        return len(self.stage_ranks) - 1 in self.stage_ids


def layout_from_dims(
    parts: list[nn.Module],
    dims: ParallelDims,
    device: torch.device,
    *,
    schedule: str = "1F1B",
    per_rank: int = 1,
) -> EvalLayout:
    """The layout of parts built for `dims` (the trainer's, or `shard_for_eval`'s) and `schedule`."""
    per_rank = stages_per_rank(schedule, per_rank) if dims.pp_enabled else 1
    pp, pp_rank = dims.pp, dims.local_rank("pp")
    owner = {s: r for r in range(pp) for s in stage_ids(schedule, r, pp, per_rank)} if pp > 1 else {0: 0}
    dp_mesh = dims.dp_mesh()
    return EvalLayout(
        parts=parts,
        stage_ids=stage_ids(schedule, pp_rank, pp, per_rank) if pp > 1 else [0],
        stage_ranks=[owner[s] for s in range(len(owner))],
        pp_rank=pp_rank,
        pp_group=dims.pp_group(),
        dp_rank=dp_mesh.get_local_rank() if dp_mesh is not None else 0,
        dp_size=dims.dp_size,
        tp=dims.tp,
        tp_rank=dims.local_rank("tp"),
        device=device,
    )


def shard_for_eval(model: nn.Module, dims: ParallelDims, device: torch.device) -> EvalLayout:
    """Cut a whole model into this rank's pipeline stage and shard it over the TP ranks.

    Data-parallel ranks keep whole replicas (no FSDP): evaluation has no optimizer state to save
    memory on, and replicas need not step in lockstep. One stage per pipeline rank (1F1B placement).
    """
    args: ModelArgs = model.args
    check_tp(args, dims.tp, seq_len=dims.tp)  # rows are padded to a multiple of tp
    parts = [model]
    if dims.pp_enabled:
        split = split_layers(args.n_layers, dims.pp)
        s = dims.local_rank("pp")
        parts = [stage_module(model, split[s], first=s == 0, last=s == dims.pp - 1)]
    if dims.tp_enabled:
        for part in parts:
            apply_tp(part, dims.mesh["tp"], loss_parallel=False)
    return layout_from_dims(parts, dims, device)


def _send(h: torch.Tensor, dst: int, group) -> None:
    header = torch.tensor([_DTYPES.index(h.dtype), *h.shape], dtype=torch.long, device=h.device)
    dist.send(header, group=group, group_dst=dst)
    dist.send(h.contiguous(), group=group, group_dst=dst)


def _recv(src: int, group, device: torch.device) -> torch.Tensor:
    header = torch.empty(4, dtype=torch.long, device=device)
    dist.recv(header, group=group, group_src=src)
    dtype, *shape = header.tolist()
    h = torch.empty(shape, dtype=_DTYPES[dtype], device=device)
    dist.recv(h, group=group, group_src=src)
    return h


@torch.no_grad()
def forward(layout: EvalLayout, batch: Batch) -> torch.Tensor | None:
    """Logits (scored tokens, vocab) of `batch` on the ranks holding the last stage, else None."""
    held = dict(zip(layout.stage_ids, layout.parts, strict=True))
    doc_ids, positions = batch.doc_ids.to(layout.device), batch.positions.to(layout.device)
    at = (batch.row.to(layout.device), batch.pos.to(layout.device))
    h = batch.tokens.to(layout.device)
    ranks: Sequence[int] = layout.stage_ranks
    for s, owner in enumerate(ranks):
        if s > 0 and ranks[s - 1] != owner:
            if layout.pp_rank == ranks[s - 1]:
                _send(h, owner, layout.pp_group)
            elif layout.pp_rank == owner:
                h = _recv(ranks[s - 1], layout.pp_group, layout.device)
        if layout.pp_rank == owner:
            # Under TP the output's input is sequence-sharded: all logits, picked below.
            pick = at if s == len(ranks) - 1 and layout.tp == 1 else None
            h = held[s](h, doc_ids, positions=positions, prefix_doc=PREFIX_DOC, logits_at=pick)
    if not layout.has_last:
        return None
    if layout.tp == 1:
        return h
    return (h.full_tensor() if isinstance(h, DTensor) else h)[at]  # vocab-sharded under loss_parallel
