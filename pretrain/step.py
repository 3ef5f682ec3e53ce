"""One optimizer step's forward and backward, and validation, in every parallel layout.

The loss is the mean over every non-padding token of the global batch whatever the layout: each
micro-batch's summed cross-entropy is divided by the global token count and multiplied by the
data- times context-parallel degree (FSDP averages gradients over those ranks). Under context
parallelism each rank keeps its `shard_sequence` of every micro-batch (tokens, labels, documents
and positions alike), and sums run over data and context ranks. With a pipeline the same
normalised loss is what the last stage's `loss_fn` returns, and the schedule is told not to
divide by the micro-batch count again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.tensor import DTensor

from parallel.context_parallel import shard_sequence
from parallel.dims import ParallelDims
from pretrain.data import IGNORE_INDEX, Batch


def dp_sum(t: torch.Tensor, dims: ParallelDims) -> torch.Tensor:
    """Sum over the ranks holding distinct tokens (data x context parallel), in place.

    (gloo has no AVG for ints, so always SUM.)
    """
    mesh = dims.batch_mesh()
    if mesh is not None:
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=mesh.get_group())
    return t


def grad_scale(dims: ParallelDims) -> int:
    """Ranks whose gradients FSDP averages: each summed loss is multiplied by this before backward."""
    return dims.dp_size * dims.cp


def cp_local(mb: Batch, dims: ParallelDims) -> Batch:
    """This context rank's tokens of a micro-batch (the whole batch without context parallelism)."""
    if not dims.cp_enabled:
        return mb
    rank = dims.local_rank("cp")
    fields = ("tokens", "labels", "doc_ids", "positions")
    return Batch(*(shard_sequence(getattr(mb, f), rank, dims.cp) for f in fields))


def pp_sum(t: torch.Tensor, dims: ParallelDims) -> torch.Tensor:
    """Sum over pipeline ranks in place: brings the last stage's loss to every stage."""
    if dims.pp_enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=dims.pp_group())
    return t


def scalar(t: torch.Tensor) -> torch.Tensor:
    """A plain tensor of a (possibly DTensor, under loss parallelism) scalar."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(
        logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )


def count_tokens(micro_batches: list[Batch], dims: ParallelDims, device) -> torch.Tensor:
    """Non-padding target tokens of the whole global batch (of this rank's tokens, summed)."""
    n = sum(int((mb.labels != IGNORE_INDEX).sum()) for mb in micro_batches)
    return dp_sum(torch.tensor(float(n), device=device), dims).clamp(min=1)


def _loss_sum(model, mb: Batch, device, autocast) -> torch.Tensor:
    with autocast():
        logits = model(mb.tokens.to(device), mb.doc_ids.to(device), positions=mb.positions.to(device))
    return cross_entropy_sum(logits, mb.labels.to(device))


def train_step(
    model, micro_batches: list[Batch], dims: ParallelDims, device, autocast, loss_ctx=contextlib.nullcontext
) -> torch.Tensor:
    """Forward/backward every micro-batch; returns the global mean loss (grads left in .grad)."""
    micro_batches = [cp_local(mb, dims) for mb in micro_batches]
    global_tokens = count_tokens(micro_batches, dims, device)
    total = torch.zeros((), device=device)
    for mb in micro_batches:
        with loss_ctx():  # forward and backward: loss parallelism needs both inside
            loss = _loss_sum(model, mb, device, autocast)
            (loss * grad_scale(dims) / global_tokens).backward()
        total += scalar(loss.detach())
    return dp_sum(total, dims) / global_tokens


@dataclass
class PipelineLoss:
    """The last stage's `loss_fn`: records each micro-batch's summed loss, returns it normalised."""

    scale: float = 1.0
    """Multiplier of the summed loss: grad_scale / global tokens for training, 0 in evaluation."""
    sums: list[torch.Tensor] = field(default_factory=list)
    """Summed (unscaled) loss of every micro-batch this step, detached."""

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = cross_entropy_sum(logits, labels)
        self.sums.append(scalar(loss.detach()))
        return loss * self.scale


@dataclass
class Pipeline:
    """This rank's share of a pipeline: the schedule and which ends of the model it holds."""

    schedule: object
    loss: PipelineLoss
    has_first: bool
    has_last: bool


def _pipeline_run(pipe: Pipeline, micro_batches: list[Batch], device, *, train: bool) -> torch.Tensor:
    """One schedule pass over the step's micro-batches; the summed loss on the last stage, else 0."""

    def cat(name: str) -> torch.Tensor:
        return torch.cat([getattr(mb, name) for mb in micro_batches]).to(device)

    kwargs = {"doc_ids": cat("doc_ids"), "positions": cat("positions")}
    args = (cat("tokens"),) if pipe.has_first else ()
    target = cat("labels") if pipe.has_last else None
    pipe.loss.sums.clear()
    run = pipe.schedule.step if train else pipe.schedule.eval
    run(*args, target=target, losses=[] if pipe.has_last else None, return_outputs=False, **kwargs)
    if not pipe.has_last:
        return torch.zeros((), device=device)
    # The schedule's first step also runs one real forward/backward of its own to infer the shapes
    # it sends between stages, which calls loss_fn once more: only the last len(micro_batches)
    # calls are this step's micro-batches.
    return torch.stack(pipe.loss.sums[-len(micro_batches) :]).sum()


def pipeline_train_step(
    pipe: Pipeline, micro_batches: list[Batch], dims: ParallelDims, device, loss_ctx=contextlib.nullcontext
) -> torch.Tensor:
    """`train_step` through a pipeline schedule: the micro-batches are its micro-batches."""
    micro_batches = [cp_local(mb, dims) for mb in micro_batches]
    global_tokens = count_tokens(micro_batches, dims, device)
    pipe.loss.scale = grad_scale(dims) / global_tokens.item()
    with loss_ctx():
        total = _pipeline_run(pipe, micro_batches, device, train=True)
    return dp_sum(pp_sum(total, dims), dims) / global_tokens


@torch.no_grad()
def validate(
    model_parts,
    pipe: Pipeline | None,
    loader,
    steps: int,
    dims: ParallelDims,
    device,
    autocast,
    loss_ctx=contextlib.nullcontext,
) -> float:
    """Mean loss over up to `steps` whole global batches of `loader`, used once from its start."""
    for part in model_parts:
        part.eval()
    loss_sum = torch.zeros((), device=device)
    n_tokens = torch.zeros((), device=device)
    loader.step = 0
    for _ in range(min(steps, len(loader.dataset) // loader.global_batch_size)):
        micro_batches = [cp_local(mb, dims) for mb in loader.next_step()]
        with loss_ctx():
            if pipe is not None:
                loss_sum += _pipeline_run(pipe, micro_batches, device, train=False)
            else:
                for mb in micro_batches:
                    loss_sum += scalar(_loss_sum(model_parts[0], mb, device, autocast))
        n_tokens += sum((mb.labels != IGNORE_INDEX).sum() for mb in micro_batches)
    for part in model_parts:
        part.train()
    loss_sum = dp_sum(pp_sum(loss_sum, dims), dims)
    return (loss_sum / dp_sum(n_tokens, dims).clamp(min=1)).item()
