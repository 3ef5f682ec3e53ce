"""Pipeline parallelism with `torch.distributed.pipelining`: split by layers, place stages, schedule.

The model is cut by deleting blocks from copies of it (blocks sit in an `nn.ModuleDict` keyed by
layer index), so every stage keeps the parameter names of the whole model and checkpoints reshard
between pipeline layouts. Stage 0 keeps the embedding, the last stage the final norm and output;
the others get None there, which `Transformer.forward` skips.

Placement: single-stage schedules (GPipe, 1F1B) put stage i on pipeline rank i. Looped schedules
(Interleaved1F1B, LoopedBFS, InterleavedZeroBubble) give rank r the stages r, r + pp, r + 2pp, …
(Narayanan et al. 2021). V-shaped schedules (ZBVZeroBubble) give rank r stages r and 2pp - 1 - r,
so the first and the last stage share a rank (Qi et al. 2024, "Zero Bubble Pipeline Parallelism").

Document boundaries and positions travel to every stage as keyword arguments: the schedule splits
them into micro-batches like the inputs, and each stage builds its own attention mask.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.distributed.pipelining import PipelineStage
from torch.distributed.pipelining.schedules import (
    PipelineScheduleSingle,
    _PipelineSchedule,
    get_schedule_class,
)

SINGLE = ("GPipe", "1F1B")
LOOPED = ("Interleaved1F1B", "LoopedBFS", "InterleavedZeroBubble")
V_SHAPED = ("ZBVZeroBubble",)
SCHEDULES = SINGLE + LOOPED + V_SHAPED


def schedule_name(name: str) -> str:
    """The canonical spelling of a supported schedule (case-insensitive), or a clear error."""
    by_lower = {s.lower(): s for s in SCHEDULES}
    if name.lower() not in by_lower:
        raise ValueError(f"parallel.pp_schedule={name!r}: expected one of {', '.join(SCHEDULES)}")
    return by_lower[name.lower()]


def stages_per_rank(schedule: str, requested: int) -> int:
    """How many stages each pipeline rank holds under `schedule`."""
    name = schedule_name(schedule)
    if name in SINGLE:
        return 1
    if name in V_SHAPED:
        if requested != 2:
            raise ValueError(
                f"parallel.pp_schedule={name} needs parallel.pp_stages_per_rank=2 (got {requested})"
            )
        return 2
    if requested < 1:
        raise ValueError(f"parallel.pp_stages_per_rank={requested} must be >= 1")
    return requested


def stage_ids(schedule: str, pp_rank: int, pp: int, per_rank: int) -> list[int]:
    """Stage indices held by pipeline rank `pp_rank`, in execution order."""
    name = schedule_name(schedule)
    if name in V_SHAPED:
        return [pp_rank, 2 * pp - 1 - pp_rank]
    return [pp_rank + k * pp for k in range(per_rank)]


def split_layers(
    n_layers: int,
    n_stages: int,
    *,
    layers_per_stage: list[int] | None = None,
    first_extra: float = 0.0,
    last_extra: float = 0.0,
) -> list[list[int]]:
    """Contiguous block indices of every stage.

    Explicit `layers_per_stage` is taken as given. Otherwise the split minimises the most expensive
    stage, where a block costs 1, the first stage also pays `first_extra` (the embedding) and the
    last `last_extra` (final norm, output projection and loss: for Llama 3 8B the output matmul
    alone is ~2.4 blocks of FLOPs). Among equally balanced splits the earliest stages get the
    fewest blocks, since they hold the most in-flight activations under 1F1B.
    """
    if layers_per_stage is not None:
        counts = list(layers_per_stage)
        if len(counts) != n_stages or sum(counts) != n_layers or min(counts) < 0:
            raise ValueError(
                f"parallel.pp_layers_per_stage={counts} must list {n_stages} non-negative counts "
                f"(pp x stages per rank) summing to the model's {n_layers} layers"
            )
    else:
        if n_stages > n_layers + (first_extra > 0) + (last_extra > 0):
            raise ValueError(
                f"{n_stages} pipeline stages (parallel.pp x stages per rank) but the model has only "
                f"{n_layers} layers"
            )
        counts = _balanced_counts(n_layers, n_stages, first_extra, last_extra)
    for s, c in enumerate(counts):
        if c == 0 and 0 < s < n_stages - 1:
            raise ValueError(f"pipeline stage {s} would hold no layers (counts {counts})")
    bounds = [sum(counts[:s]) for s in range(n_stages + 1)]
    return [list(range(bounds[s], bounds[s + 1])) for s in range(n_stages)]


def _balanced_counts(n_layers: int, n_stages: int, first: float, last: float) -> list[int]:
    """Minimise the max stage cost by dynamic programming over (stage, blocks used so far)."""
    inf = float("inf")

    def cost(stage: int, blocks: int) -> float:
        extra = (first if stage == 0 else 0.0) + (last if stage == n_stages - 1 else 0.0)
        if blocks == 0 and extra == 0:
            return inf  # a stage must do something
        return blocks + extra

    # best[s][n]: (max cost, counts) for the first s stages holding n blocks; later stages are
    # filled back to front so the comparison prefers small early stages on ties.
    best: list[dict[int, tuple[float, tuple[int, ...]]]] = [{0: (0.0, ())}]
    for s in range(n_stages):
        row: dict[int, tuple[float, tuple[int, ...]]] = {}
        for used, (worst, counts) in best[s].items():
            for c in range(n_layers - used + 1):
                w = max(worst, cost(s, c))
                if w == inf:
                    continue
                key = used + c
                cand = (w, counts + (c,))
                if key not in row or cand < row[key]:
                    row[key] = cand
        best.append(row)
    if n_layers not in best[n_stages]:
        raise ValueError(f"cannot split {n_layers} layers into {n_stages} non-empty pipeline stages")
    return list(best[n_stages][n_layers][1])


def check_microbatches(schedule: str, pp: int, n_microbatches: int) -> None:
    """The micro-batch counts a schedule can run (checked before any process-group work)."""
    name = schedule_name(schedule)
    how = (
        "the count is training.global_batch_size / (training.micro_batch_size x data-parallel degree); "
        "raise global_batch_size or lower micro_batch_size"
    )
    if name != "GPipe" and n_microbatches < pp:
        raise ValueError(
            f"parallel.pp_schedule={name} needs at least parallel.pp={pp} micro-batches per step, "
            f"got {n_microbatches}: {how}"
        )
    if name in LOOPED and n_microbatches % pp:
        raise ValueError(
            f"parallel.pp_schedule={name} needs a multiple of parallel.pp={pp} micro-batches per step, "
            f"got {n_microbatches}: {how}"
        )


def stage_module(model: nn.Module, layers: list[int], *, first: bool, last: bool) -> nn.Module:
    """A copy of `model` (a `Transformer`) holding only `layers` and the ends it owns.

    The parts the stage drops are never copied (deepcopy's memo maps them to None), so building
    every stage of a model that was initialised whole costs one stage of memory at a time.
    """
    keep = {str(i) for i in layers}
    drop = [block for name, block in model.layers.items() if name not in keep]
    if not first:
        drop.append(model.tok_embeddings)
    if not last:
        drop += [model.norm, model.output]
    stage = copy.deepcopy(model, {id(m): None for m in drop if m is not None})
    for name in [n for n, b in stage.layers.items() if b is None]:
        del stage.layers[name]
    return stage


def build_schedule(
    parts: list[nn.Module],
    ids: list[int],
    n_stages: int,
    schedule: str,
    n_microbatches: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
    group,
) -> _PipelineSchedule:
    """PipelineStages for this rank's parts and the schedule that runs them.

    `loss_fn` returns the already normalised loss of one micro-batch (see `pretrain.train`), so the
    schedule must not divide gradients by the micro-batch count again (scale_grads=False).
    """
    name = schedule_name(schedule)
    check_microbatches(name, n_stages // len(parts), n_microbatches)
    stages = [
        PipelineStage(part, sid, n_stages, device, group=group) for part, sid in zip(parts, ids, strict=True)
    ]
    cls = get_schedule_class(name)
    if issubclass(cls, PipelineScheduleSingle):
        return cls(stages[0], n_microbatches=n_microbatches, loss_fn=loss_fn, scale_grads=False)
    return cls(stages, n_microbatches=n_microbatches, loss_fn=loss_fn, scale_grads=False)
