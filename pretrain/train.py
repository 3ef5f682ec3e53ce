"""Trainer entry point (Hydra): `torchrun --nproc-per-node N -m pretrain.train key=value ...`.

Reads top to bottom: process group -> parallel dims -> data -> model on meta (or full, see
`init_model`) -> shard -> init -> optimizer/schedule -> step loop (accumulate, clip, step, log,
validate) -> optional sample. Works as a plain `python -m pretrain.train` too.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import torch
import torch.distributed as dist
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch.distributed.tensor import DTensor
from torch.distributed.tensor.parallel import loss_parallel

from parallel.activation_checkpoint import apply_ac
from parallel.compile import apply_compile
from parallel.dims import ParallelDims
from parallel.fsdp import apply_fsdp
from parallel.tensor_parallel import apply_tp, check_tp
from parallel.utils import clip_grad_norm_, set_determinism
from pretrain.configs import ModelArgs, get_model_config
from pretrain.data import IGNORE_INDEX, Batch, PackedDataset, StepLoader
from pretrain.generate import generate
from pretrain.job_config import TrainConfig, register_configs
from pretrain.lr import build_lr_scheduler
from pretrain.metrics import MetricsLogger, memory_gib, peak_tflops
from pretrain.model import Transformer
from pretrain.tokenizer import Tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
FULL_INIT_MAX_PARAMS = 1_000_000_000
"""Below this size every rank builds the whole model from the seed before sharding (see init_model)."""


@dataclass
class TrainResult:
    """What a finished run reports back (tests compare these across layouts)."""

    losses: list[float] = field(default_factory=list)
    val_losses: dict[int, float] = field(default_factory=dict)
    sample: str | None = None


def init_distributed() -> tuple[int, int, torch.device]:
    """Join the torchrun process group if there is one; returns (rank, world_size, device)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world_size, device


def build_model_args(cfg: TrainConfig, dataset: PackedDataset) -> ModelArgs:
    """Named model shape plus overrides, checked against the data it will train on."""
    args = get_model_config(cfg.model.name, **cfg.model.overrides())
    n_vocab = dataset.tokenizer_info["n_vocab"]
    if n_vocab > args.vocab_size:
        raise ValueError(
            f"model {cfg.model.name!r} has vocab_size={args.vocab_size} but {dataset.path} was tokenized "
            f"with {dataset.tokenizer_info['name']!r} (n_vocab={n_vocab}); set "
            f"model.vocab_size={n_vocab} or pack the data with a matching tokenizer"
        )
    if cfg.data.seq_len > args.max_seq_len:
        raise ValueError(
            f"data.seq_len={cfg.data.seq_len} exceeds max_seq_len={args.max_seq_len} "
            f"of model {cfg.model.name!r}"
        )
    return args


def init_model(args: ModelArgs, dims: ParallelDims, cfg: TrainConfig, device: torch.device) -> Transformer:
    """Build, shard and initialise the model.

    Small models are built whole on every rank from the seed and then sharded, so every parallel
    layout starts from bit-identical weights (what the layout-equivalence tests rely on). Large
    ones are built on the meta device, sharded, and each shard initialised in place.
    """
    full_init = args.num_params() < FULL_INIT_MAX_PARAMS
    with torch.device("cpu" if full_init else "meta"):
        model = Transformer(args)
    if full_init:
        torch.manual_seed(cfg.training.seed)
        model.init_weights()
    if dims.tp_enabled:
        apply_tp(model, dims.mesh["tp"], loss_parallel=cfg.parallel.loss_parallel)
    if cfg.parallel.compile:  # inside activation checkpointing: AC within a compiled TP block fails
        apply_compile(model, tp=dims.tp_enabled)
    apply_ac(model, cfg.parallel.activation_checkpoint, cfg.parallel.ac_every)
    if dims.dp_enabled:
        apply_fsdp(
            model,
            dims.fsdp_mesh(),
            param_dtype=DTYPES[cfg.training.dtype],
            reduce_dtype=torch.float32,
            reshard_after_forward=cfg.parallel.reshard_after_forward,
        )
    if full_init:
        model.to(device)
    else:
        model.to_empty(device=device)
        torch.manual_seed(cfg.training.seed)
        model.init_weights(buffer_device=device)
    return model


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with decay on matrices only: norms (and optionally the embedding) are not decayed."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        skip = p.ndim < 2 or (not cfg.optim.decay_embeddings and "tok_embeddings" in name)
        (no_decay if skip else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)


def _dp_sum(t: torch.Tensor, dims: ParallelDims) -> torch.Tensor:
    """Sum over data-parallel ranks (gloo has no AVG for ints, so always SUM)."""
    if dims.dp_enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=dims.dp_mesh().get_group())
    return t


def _loss_sum(model: Transformer, mb: Batch, device: torch.device, autocast) -> torch.Tensor:
    with autocast():
        logits = model(mb.tokens.to(device), mb.doc_ids.to(device), positions=mb.positions.to(device))
    return F.cross_entropy(
        logits.flatten(0, 1).float(),
        mb.labels.to(device).flatten(),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )


def _scalar(t: torch.Tensor) -> torch.Tensor:
    """A plain tensor of a (possibly DTensor, under loss parallelism) scalar loss."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def train_step(
    model, micro_batches: list[Batch], dims: ParallelDims, device, autocast, loss_ctx=contextlib.nullcontext
) -> torch.Tensor:
    """Forward/backward every micro-batch; returns the global mean loss (grads left in .grad).

    Each micro-batch's summed loss is divided by the token count of the whole global batch, and
    multiplied by dp_size because FSDP averages gradients over ranks: the result is the gradient
    of the global mean loss, whatever the layout or the padding in each rank's share.
    """
    n_tokens = sum(int((mb.labels != IGNORE_INDEX).sum()) for mb in micro_batches)
    global_tokens = _dp_sum(torch.tensor(float(n_tokens), device=device), dims)
    total = torch.zeros((), device=device)
    for mb in micro_batches:
        with loss_ctx():  # forward and backward: loss parallelism needs both inside
            loss = _loss_sum(model, mb, device, autocast)
            (loss * dims.dp_size / global_tokens.clamp(min=1)).backward()
        total += _scalar(loss.detach())
    return _dp_sum(total, dims) / global_tokens.clamp(min=1)


@torch.no_grad()
def validate(
    model,
    loader: StepLoader,
    steps: int,
    dims: ParallelDims,
    device,
    autocast,
    loss_ctx=contextlib.nullcontext,
) -> float:
    model.eval()
    loss_sum = torch.zeros((), device=device)
    n_tokens = torch.zeros((), device=device)
    loader.step = 0
    # Never wrap around: a small validation set is used once, whole batches only.
    for _ in range(min(steps, len(loader.dataset) // loader.global_batch_size)):
        for mb in loader.next_step():
            with loss_ctx():
                loss_sum += _scalar(_loss_sum(model, mb, device, autocast))
            n_tokens += (mb.labels != IGNORE_INDEX).sum()
    model.train()
    return (_dp_sum(loss_sum, dims) / _dp_sum(n_tokens, dims).clamp(min=1)).item()


def _make_loader(
    path: str, cfg: TrainConfig, dims: ParallelDims, rank_in_dp: int, *, shuffle: bool
) -> StepLoader:
    dataset = PackedDataset(path, cfg.data.seq_len)
    return StepLoader(
        dataset,
        global_batch_size=cfg.training.global_batch_size,
        micro_batch_size=cfg.training.micro_batch_size,
        dp_rank=rank_in_dp,
        dp_size=dims.dp_size,
        seed=cfg.training.seed,
        shuffle=shuffle,
    )


def load_sample_tokenizer(cfg: TrainConfig, tokenizer_info: dict) -> Tokenizer:
    """The tokenizer for sampling, checked up front against the one the data was packed with."""
    tok = Tokenizer.from_file(cfg.data.tokenizer)
    if tok.sha256 != tokenizer_info["sha256"]:
        raise ValueError(
            f"data.tokenizer={cfg.data.tokenizer!r} (sha256 {tok.sha256[:12]}) is not the tokenizer the "
            f"data was packed with ({tokenizer_info['name']!r}, sha256 {tokenizer_info['sha256'][:12]})"
        )
    return tok


def sample(model: Transformer, cfg: TrainConfig, tok: Tokenizer, rank: int) -> str | None:
    """Continuation of training.sample_prompt, computed on rank 0 from the gathered weights."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank != 0:
        return None
    plain = Transformer(model.args)
    plain.load_state_dict(state)
    t = cfg.training
    ids = generate(
        plain.eval(),
        tok.encode(t.sample_prompt, bos=True),
        t.sample_tokens,
        temperature=t.sample_temperature,
        top_k=t.sample_top_k,
        stop_ids=(tok.eos_id,),
        seed=t.seed,
    )
    return t.sample_prompt + tok.decode([i for i in ids if i != tok.eos_id])


def train(cfg: TrainConfig | DictConfig) -> TrainResult:
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_object(cfg)
    rank, world_size, device = init_distributed()
    try:
        return _train(cfg, rank, world_size, device)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, rank: int, world_size: int, device: torch.device) -> TrainResult:
    p = cfg.parallel
    dims = ParallelDims(p.dp_replicate, p.dp_shard, p.tp, p.pp, world_size)
    if dims.pp_enabled:
        raise NotImplementedError(
            f"parallel.pp={p.pp}: pipeline parallelism is not in this release yet; use data and "
            "tensor parallelism (parallel.dp_shard / parallel.dp_replicate / parallel.tp)"
        )
    check_tp(get_model_config(cfg.model.name, **cfg.model.overrides()), p.tp, cfg.data.seq_len)
    if cfg.training.dtype not in DTYPES:
        raise ValueError(f"training.dtype={cfg.training.dtype!r}; expected one of {sorted(DTYPES)}")
    if world_size > 1:
        dims.build_mesh(device.type)
    dp_rank = dims.dp_mesh().get_local_rank() if dims.dp_enabled else 0
    set_determinism(cfg.training.seed, deterministic=cfg.training.deterministic)

    loader = _make_loader(cfg.data.path, cfg, dims, dp_rank, shuffle=cfg.data.shuffle)
    val_loader = None
    if cfg.validation.path:
        val_loader = _make_loader(cfg.validation.path, cfg, dims, dp_rank, shuffle=False)
    args = build_model_args(cfg, loader.dataset)
    tokenizer = (
        load_sample_tokenizer(cfg, loader.dataset.tokenizer_info) if cfg.training.sample_prompt else None
    )
    model = init_model(args, dims, cfg, device)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_lr_scheduler(optimizer, cfg.lr, cfg.training.steps)

    # Single process: autocast gives bf16 compute. Under FSDP its MixedPrecisionPolicy does that.
    dtype = DTYPES[cfg.training.dtype]
    use_autocast = dtype != torch.float32 and not dims.dp_enabled
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if use_autocast else contextlib.nullcontext
    loss_ctx = loss_parallel if dims.tp_enabled and p.loss_parallel else contextlib.nullcontext

    run_dir = Path(cfg.run.dir)
    logger = MetricsLogger(run_dir, enabled=rank == 0, tensorboard=cfg.metrics.tensorboard)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / "config.yaml.tmp"
        tmp.write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        tmp.replace(run_dir / "config.yaml")
        print(
            f"model {cfg.model.name}: {args.num_params() / 1e6:.1f}M params, world_size={world_size}, "
            f"dp={dims.dp_size}, grad_accum={loader.accumulation_steps}, "
            f"{len(loader.dataset)} train sequences of {cfg.data.seq_len} tokens",
            flush=True,
        )

    peak = peak_tflops(cfg.metrics.peak_tflops, device)
    flops_per_token = args.flops_per_token(cfg.data.seq_len)
    tokens_per_step = cfg.training.global_batch_size * cfg.data.seq_len
    result = TrainResult()
    window_start, window_steps, data_wait = time.perf_counter(), 0, 0.0
    model.train()
    for step in range(1, cfg.training.steps + 1):
        t0 = time.perf_counter()
        micro_batches = loader.next_step()
        data_wait += time.perf_counter() - t0
        loss = train_step(model, micro_batches, dims, device, autocast, loss_ctx)
        grad_norm = clip_grad_norm_(model.parameters(), cfg.training.max_norm)
        loss_value, grad_norm_value = loss.item(), grad_norm.item()
        if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
            raise FloatingPointError(
                f"step {step}: loss={loss_value}, grad_norm={grad_norm_value}; stopping before the "
                "optimizer applies it (lower optim.lr or check the data)"
            )
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        result.losses.append(loss_value)
        window_steps += 1

        last = step == cfg.training.steps
        elapsed = time.perf_counter() - window_start  # before validation: it is not training time
        val_loss = None
        if val_loader is not None and (step % cfg.validation.interval == 0 or last):
            val_loss = validate(model, val_loader, cfg.validation.steps, dims, device, autocast, loss_ctx)
            result.val_losses[step] = val_loss
        if step % cfg.metrics.log_interval == 0 or step == 1 or last or val_loss is not None:
            tokens_per_s = tokens_per_step * window_steps / elapsed
            tflops = flops_per_token * tokens_per_s / world_size / 1e12  # per device
            record = {
                "loss": loss_value,
                "lr": lr,
                "grad_norm": grad_norm_value,
                "tokens_per_s": tokens_per_s,
                "tflops": tflops,
                "mfu": tflops / peak if peak else None,
                "mem_gib": memory_gib(device),
                "data_wait_s": data_wait / window_steps,
            }
            if val_loss is not None:
                record["val_loss"] = val_loss
            logger.log(step, record)
            window_start, window_steps, data_wait = time.perf_counter(), 0, 0.0

    if tokenizer is not None:
        result.sample = sample(model, cfg, tokenizer, rank)
        if rank == 0:
            print(f"sample: {result.sample}", flush=True)
    logger.close()
    return result


register_configs()


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
