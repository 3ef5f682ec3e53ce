"""Trainer entry point (Hydra): `torchrun --nproc-per-node N -m pretrain.train key=value ...`.

Reads top to bottom: degrees checked -> process group -> mesh -> data -> model parts (split into
pipeline stages, sharded and initialised: pretrain.build) -> optimizer/schedule -> step loop
(forward/backward: pretrain.step; clip, step, log, validate) -> optional sample. Works as a
plain `python -m pretrain.train` too.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch.distributed.tensor.parallel import loss_parallel

from parallel.dims import ParallelDims
from parallel.pipeline import check_microbatches
from parallel.tensor_parallel import check_tp
from parallel.utils import clip_grad_norm_, set_determinism
from pretrain.build import DTYPES, build_optimizer, init_model, pipeline_split
from pretrain.checkpoint import Checkpointer
from pretrain.configs import ModelArgs, get_model_config
from pretrain.data import PackedDataset, StepLoader
from pretrain.fault import (
    EXIT_NONFINITE,
    EXIT_OK,
    EXIT_PREEMPTED,
    SpikeDetector,
    StopSignals,
    TrainingStopped,
    Watchdog,
    shorten_pg_timeout,
    write_exit_record,
)
from pretrain.generate import generate
from pretrain.job_config import TrainConfig, register_configs
from pretrain.lr import build_lr_scheduler
from pretrain.metrics import MetricsLogger, memory_gib, peak_tflops
from pretrain.model import Transformer
from pretrain.step import pipeline_train_step, train_step, validate
from pretrain.tokenizer import Tokenizer


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


def full_state_dict(parts: list[torch.nn.Module], dims: ParallelDims, rank: int) -> dict | None:
    """The whole model's unsharded state on rank 0 (None elsewhere), from every layout."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    # Without a pipeline only rank 0 needs the tensors; with one, the first rank of every pipeline
    # stage's data/tensor group keeps them to send them on to rank 0.
    options = StateDictOptions(full_state_dict=True, cpu_offload=not dims.pp_enabled)
    state: dict = {}
    for part in parts:
        state.update(get_model_state_dict(part, options=options))
    if not dims.pp_enabled:
        return state if rank == 0 else None
    if any(dims.local_rank(d) for d in ("dp_replicate", "dp_shard", "tp")):
        return None
    gathered = [None] * dims.pp if dims.local_rank("pp") == 0 else None
    dist.gather_object({k: v.cpu() for k, v in state.items()}, gathered, group_dst=0, group=dims.pp_group())
    if gathered is None:
        return None
    return {k: v for stage_state in gathered for k, v in stage_state.items()}


def sample(state: dict | None, args: ModelArgs, cfg: TrainConfig, tok: Tokenizer) -> str | None:
    """Continuation of training.sample_prompt from the gathered weights (on rank 0)."""
    if state is None:
        return None
    plain = Transformer(args)
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


def check_layout(cfg: TrainConfig, world_size: int) -> ParallelDims:
    """Every degree checked against the world size and the model, before any process-group work."""
    p = cfg.parallel
    dims = ParallelDims(p.dp_replicate, p.dp_shard, p.tp, p.pp, world_size, cp=p.cp)
    args = get_model_config(cfg.model.name, **cfg.model.overrides())
    check_tp(args, p.tp, cfg.data.seq_len)
    if cfg.training.dtype not in DTYPES:
        raise ValueError(f"training.dtype={cfg.training.dtype!r}; expected one of {sorted(DTYPES)}")
    if dims.pp_enabled:
        pipeline_split(args, cfg)
        t = cfg.training
        n_micro, rem = divmod(t.global_batch_size, t.micro_batch_size * dims.dp_size)
        if n_micro and not rem:  # otherwise the loader names the problem
            check_microbatches(p.pp_schedule, p.pp, n_micro)
    return dims


def train(cfg: TrainConfig | DictConfig) -> TrainResult:
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_object(cfg)
    dims = check_layout(cfg, int(os.environ.get("WORLD_SIZE", "1")))
    rank, world_size, device = init_distributed()
    try:
        result = _train(cfg, dims, rank, world_size, device)
        if rank == 0:
            write_exit_record(Path(cfg.run.dir), EXIT_OK, "finished", cfg.training.steps)
        return result
    except TrainingStopped as stop:
        if rank == 0:
            print(f"stopping (exit {stop.code}): {stop.reason}", file=sys.stderr, flush=True)
            write_exit_record(Path(cfg.run.dir), stop.code, stop.reason, stop.step)
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, dims: ParallelDims, rank: int, world_size: int, device) -> TrainResult:
    p = cfg.parallel
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
    parts, pipe = init_model(args, dims, cfg, device)
    params = [q for part in parts for q in part.parameters()]
    # One optimizer per model part (pipeline stage), so each state dict maps to its parameters' names.
    optimizers = [build_optimizer([part], cfg) for part in parts]
    schedulers = [build_lr_scheduler(opt, cfg.lr, cfg.training.steps) for opt in optimizers]

    # Single process: autocast gives bf16 compute. Under FSDP its MixedPrecisionPolicy does that.
    dtype = DTYPES[cfg.training.dtype]
    use_autocast = dtype != torch.float32 and not dims.dp_enabled
    if use_autocast and pipe is not None:
        raise ValueError(
            "training.dtype=bfloat16 with a pipeline needs FSDP's mixed precision: use a data-parallel "
            "degree > 1 (parallel.dp_shard) or training.dtype=float32"
        )
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if use_autocast else contextlib.nullcontext
    loss_ctx = loss_parallel if dims.tp_enabled and p.loss_parallel else contextlib.nullcontext

    run_dir = Path(cfg.run.dir)
    ckpt = Checkpointer(
        cfg.checkpoint, run_dir, parts, optimizers, schedulers, loader, rank=rank, world_size=world_size
    )
    start = ckpt.resume_step() or 0
    if start:
        ckpt.load(start)
    elif cfg.checkpoint.initial_load_path:
        ckpt.load_model_only(cfg.checkpoint.initial_load_path)
    logger = MetricsLogger(run_dir, enabled=rank == 0, tensorboard=cfg.metrics.tensorboard)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / "config.yaml.tmp"
        tmp.write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        tmp.replace(run_dir / "config.yaml")
        print(
            f"model {cfg.model.name}: {args.num_params() / 1e6:.1f}M params, world_size={world_size}, "
            f"dp={dims.dp_size} tp={dims.tp} pp={dims.pp}, "
            f"micro-batches per step={loader.accumulation_steps}, "
            f"{len(loader.dataset)} train sequences of {cfg.data.seq_len} tokens"
            + (f", resuming after step {start}" if start else ""),
            flush=True,
        )

    t = cfg.training
    peak = peak_tflops(cfg.metrics.peak_tflops, device)
    flops_per_token = args.flops_per_token(cfg.data.seq_len)
    tokens_per_step = t.global_batch_size * cfg.data.seq_len
    result = TrainResult()
    signals = StopSignals()
    watchdog = Watchdog(t.first_step_timeout_s, t.step_timeout_s, rank)
    spikes = SpikeDetector(t.spike_window, t.spike_zscore)
    skipped = 0
    window_start, window_steps, data_wait = time.perf_counter(), 0, 0.0
    for part in parts:
        part.train()
    try:
        for step in range(start + 1, t.steps + 1):
            if cfg.debug.hang_at_step == step and rank == cfg.debug.hang_rank:
                print(f"[rank {rank}] debug.hang_at_step={step}: hanging", flush=True)
                threading.Event().wait()
            t0 = time.perf_counter()
            micro_batches = loader.next_step()
            data_wait += time.perf_counter() - t0
            if pipe is not None:
                loss = pipeline_train_step(pipe, micro_batches, dims, device, loss_ctx)
            else:
                loss = train_step(parts[0], micro_batches, dims, device, autocast, loss_ctx)
            if cfg.debug.nan_at_step == step and rank == cfg.debug.nan_rank:
                next(q for q in params if q.grad is not None).grad.fill_(float("nan"))
            grad_norm = clip_grad_norm_(params, t.max_norm, pp_group=dims.pp_group())
            loss_value, grad_norm_value = loss.item(), grad_norm.item()
            finite = math.isfinite(loss_value) and math.isfinite(grad_norm_value)
            spike = finite and spikes.update(loss_value)
            lr = schedulers[0].get_last_lr()[0]
            if not finite:  # every rank sees the same all-reduced values, so all decide alike
                skipped += 1
                what = f"step {step}: loss={loss_value}, grad_norm={grad_norm_value}"
                if skipped > t.max_nonfinite_skips:
                    raise TrainingStopped(
                        EXIT_NONFINITE,
                        f"{what}; non-finite steps: {skipped} > training.max_nonfinite_skips="
                        f"{t.max_nonfinite_skips}. Stopped before the optimizer applied it; the latest "
                        "checkpoint is the last good state (lower optim.lr or check the data)",
                        step,
                    )
                if rank == 0:
                    print(f"{what}: skipped ({skipped}/{t.max_nonfinite_skips})", flush=True)
            elif spike and rank == 0:
                print(f"step {step}: loss spike {loss_value:.4f}" + (" (skipped)" if t.skip_spikes else ""))
            if finite and not (spike and t.skip_spikes):
                for opt in optimizers:
                    opt.step()
            for opt, sched in zip(optimizers, schedulers, strict=True):
                sched.step()
                opt.zero_grad(set_to_none=True)
            result.losses.append(loss_value)
            window_steps += 1

            last = step == t.steps
            elapsed = time.perf_counter() - window_start  # before validation: it is not training time
            val_loss = None
            if val_loader is not None and (step % cfg.validation.interval == 0 or last):
                val_loss = validate(
                    parts, pipe, val_loader, cfg.validation.steps, dims, device, autocast, loss_ctx
                )
                result.val_losses[step] = val_loss
            if step % cfg.metrics.log_interval == 0 or step == start + 1 or last or val_loss is not None:
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
                if skipped:
                    record["skipped_steps"] = skipped
                if spike:
                    record["loss_spike"] = True
                logger.log(step, record)
                window_start, window_steps, data_wait = time.perf_counter(), 0, 0.0

            if step == start + 1:
                shorten_pg_timeout(1.5 * t.step_timeout_s)
            watchdog.beat(step)
            ckpt.poll()
            signum = signals.requested()
            if signum:
                name = signal.Signals(signum).name
                watchdog.pause(t.first_step_timeout_s)
                if cfg.checkpoint.enabled:
                    ckpt.save(step, sync=True)
                raise TrainingStopped(EXIT_PREEMPTED, f"{name} received: stopped after step {step}", step)
            if ckpt.should_save(step, last):
                watchdog.pause(t.first_step_timeout_s)
                ckpt.save(step, sync=last)

        if tokenizer is not None:
            result.sample = sample(full_state_dict(parts, dims, rank), args, cfg, tokenizer)
            if rank == 0:
                print(f"sample: {result.sample}", flush=True)
    finally:
        watchdog.close()
        signals.restore()
        ckpt.close()
        logger.close()
    return result


register_configs()


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
