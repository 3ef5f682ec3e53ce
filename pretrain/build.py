"""Build the model for a parallel layout: split into pipeline stages, shard, initialise, optimise.

Order per stage, as torchtitan: tensor parallel -> context parallel -> torch.compile -> activation
checkpointing -> FSDP (TP first so compile sees DTensors, and context parallelism then gathers
each rank's own heads; compile inside AC because AC within a compiled TP block fails; FSDP last so
its units wrap everything). `build_parts` stops there, still on the meta device, which is what
`pretrain.dryrun` inspects; `init_model` then materialises and schedules.
"""

from __future__ import annotations

import zlib

import torch
from torch import nn

from parallel.activation_checkpoint import apply_ac
from parallel.compile import apply_compile
from parallel.context_parallel import apply_cp
from parallel.dims import ParallelDims
from parallel.fsdp import apply_fsdp
from parallel.pipeline import build_schedule, split_layers, stage_ids, stage_module, stages_per_rank
from parallel.tensor_parallel import apply_tp
from pretrain.configs import ModelArgs
from pretrain.job_config import TrainConfig
from pretrain.model import Transformer
from pretrain.step import Pipeline, PipelineLoss

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
FULL_INIT_MAX_PARAMS = 1_000_000_000
"""Below this size every rank builds the whole model from the seed before sharding (see init_model)."""


def pipeline_split(args: ModelArgs, cfg: TrainConfig) -> tuple[int, list[list[int]]]:
    """(stages per rank, blocks of every stage) for the configured layout; raises on bad degrees."""
    p = cfg.parallel
    if p.pp > 1 and args.tie_embeddings:
        raise ValueError(
            f"parallel.pp={p.pp} with model.tie_embeddings=true: the first and the last pipeline stage "
            "would each need the tied embedding; use parallel.pp=1 (FSDP/TP shard it)"
        )
    per_rank = stages_per_rank(p.pp_schedule, p.pp_stages_per_rank) if p.pp > 1 else 1
    split = split_layers(
        args.n_layers,
        p.pp * per_rank,
        layers_per_stage=p.pp_layers_per_stage,
        first_extra=p.pp_first_stage_extra,
        last_extra=p.pp_last_stage_extra,
    )
    return per_rank, split


def parallelize(part: nn.Module, dims: ParallelDims, cfg: TrainConfig) -> nn.Module:
    """Apply TP, CP, compile, activation checkpointing and FSDP to one model part, in that order."""
    p = cfg.parallel
    if dims.tp_enabled:
        apply_tp(part, dims.mesh["tp"], loss_parallel=p.loss_parallel)
    if dims.cp_enabled:
        apply_cp(part, dims.cp_mesh())
    if p.compile:
        apply_compile(part, tp=dims.tp_enabled)
    apply_ac(part, p.activation_checkpoint, p.ac_every)
    if dims.fsdp_enabled:
        apply_fsdp(
            part,
            dims.fsdp_mesh(),
            param_dtype=DTYPES[cfg.training.dtype],
            reduce_dtype=torch.float32,
            reshard_after_forward=p.reshard_after_forward,
            cpu_offload=p.fsdp_cpu_offload,
        )
    return part


def init_seed(seed: int, dims: ParallelDims, stage: int) -> int:
    """Seed for initialising one stage's local shards in place (the meta-device path).

    On CUDA, DTensor's offset-based RNG makes sharded init equal for every layout and overrides
    this. Elsewhere each rank draws its shards itself, so the seed differs per stage, FSDP shard
    (dp_shard x cp) and TP rank (identical seeds would repeat the same values in every shard), and
    is the same across HSDP replicas, which must hold identical copies.
    """
    coords = (seed, stage, dims.local_rank("dp_shard"), dims.local_rank("tp"))
    if dims.cp_enabled:
        coords += (dims.local_rank("cp"),)
    return zlib.crc32(repr(coords).encode()) if any(coords[1:]) else seed


def build_parts(
    args: ModelArgs, dims: ParallelDims, cfg: TrainConfig, *, full_init: bool = False
) -> tuple[list[int], list[nn.Module]]:
    """This rank's pipeline stage ids and its model parts, split and parallelized but not placed.

    Without `full_init` the parts stay on the meta device, so nothing is allocated: the trainer
    materialises them next (init_model) and `pretrain.dryrun` only reads their shapes, both from
    this one code path. With `full_init` the whole model is built on the CPU and initialised from
    the seed before it is split.
    """
    with torch.device("cpu" if full_init else "meta"):
        whole = Transformer(args)
    if full_init:
        torch.manual_seed(cfg.training.seed)
        whole.init_weights()
    if not dims.pp_enabled:
        return [0], [parallelize(whole, dims, cfg)]

    per_rank, split = pipeline_split(args, cfg)
    n_stages = len(split)
    ids = stage_ids(cfg.parallel.pp_schedule, dims.local_rank("pp"), dims.pp, per_rank)
    parts = [stage_module(whole, split[i], first=i == 0, last=i == n_stages - 1) for i in ids]
    del whole
    return ids, [parallelize(part, dims, cfg) for part in parts]


def init_model(
    args: ModelArgs,
    dims: ParallelDims,
    cfg: TrainConfig,
    device: torch.device,
    *,
    full_init: bool | None = None,
) -> tuple[list[nn.Module], Pipeline | None]:
    """This rank's model parts (one per pipeline stage it holds) and its pipeline, if any.

    Small models are built whole on every rank from the seed and then split and sharded, so every
    layout starts from bit-identical weights (what the layout-equivalence tests rely on). Large ones
    (or `full_init=False`) are built on the meta device, split, sharded, and each local shard
    initialised in place, so a 405B model never exists whole on one rank.
    """
    if full_init is None:
        full_init = args.num_params() < FULL_INIT_MAX_PARAMS
    ids, parts = build_parts(args, dims, cfg, full_init=full_init)
    for sid, part in zip(ids, parts, strict=True):
        if full_init:
            part.to(device)
            part.tie_weights()  # a move may give the output a Parameter of its own
        else:
            part.to_empty(device=device)
            torch.manual_seed(init_seed(cfg.training.seed, dims, sid))
            part.init_weights(buffer_device=device)  # re-ties first
            torch.manual_seed(cfg.training.seed)

    if not dims.pp_enabled:
        return parts, None
    return parts, build_pipeline(parts, ids, dims, cfg, device)


def build_pipeline(
    parts: list[nn.Module], ids: list[int], dims: ParallelDims, cfg: TrainConfig, device: torch.device
) -> Pipeline:
    """The schedule running this rank's stages `ids` on cfg's micro-batches per step (a training
    stage with another batch size or seq_len gets a new one: pretrain/stages.py)."""
    loss = PipelineLoss()
    n_micro = cfg.training.global_batch_size // (cfg.training.micro_batch_size * dims.dp_size)
    n_stages = dims.pp * len(ids)
    schedule = build_schedule(
        parts, ids, n_stages, cfg.parallel.pp_schedule, n_micro, loss, device, dims.pp_group()
    )
    return Pipeline(schedule, loss, has_first=0 in ids, has_last=n_stages - 1 in ids)


def build_optimizer(parts: list[nn.Module], cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with decay on matrices only: norms (and optionally the embedding) are not decayed."""
    decay, no_decay = [], []
    for part in parts:
        for name, p in part.named_parameters():
            skip = p.ndim < 2 or (not cfg.optim.decay_embeddings and "tok_embeddings" in name)
            (no_decay if skip else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
