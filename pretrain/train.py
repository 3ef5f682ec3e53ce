"""Trainer entry point: `torchrun --nproc-per-node N -m pretrain.train key=value ...`.

Reads top to bottom: config composed and checked, then layout, data and resume checked
(pretrain.preflight: a bad config is one line and exit 2 before any process group or model) ->
process group -> mesh -> model parts (split into pipeline stages, sharded and initialised:
pretrain.build) -> optimizer/schedule -> checkpoint restored -> step loop (forward/backward:
pretrain.step; clip, update, log, validate, checkpoint or stop) -> optional sample. Works as a
plain `python -m pretrain.train` too.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch.distributed.tensor.parallel import loss_parallel

from parallel.dims import ParallelDims
from parallel.utils import clip_grad_norm_, set_determinism
from pretrain.build import DTYPES, build_optimizer, init_model
from pretrain.checkpoint import Checkpointer
from pretrain.data import StepLoader
from pretrain.ema import WeightEma
from pretrain.eval.in_loop import eval_due, evaluate_in_loop, metric_keys, summary_line
from pretrain.fault import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_NONFINITE,
    EXIT_OK,
    EXIT_PREEMPTED,
    SpikeDetector,
    StopSignals,
    TrainingStopped,
    Watchdog,
    shorten_pg_timeout,
    step_hooks,
    write_exit_record,
)
from pretrain.job_config import ConfigError, TrainConfig, check_config, compose_config, typed_config
from pretrain.lr import apply_configured_schedule, build_lr_scheduler
from pretrain.metrics import MetricsLogger, StepMetrics, memory_gib, peak_tflops
from pretrain.preflight import (
    RunData,
    check_eval_tasks,
    check_initial_load,
    check_layout,
    check_resume,
    model_args,
    open_data,
    resume_step,
)
from pretrain.run import Run, TrainResult
from pretrain.sampling import full_state_dict, sample
from pretrain.stages import enter_stage, lr_schedule, plan_stages, resumed_loader
from pretrain.step import pipeline_train_step, train_step, validate


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


def preflight(cfg: TrainConfig, world_size: int, rank: int) -> tuple[ParallelDims, RunData, int]:
    """Layout, data and resume checked before anything is built: (dims, data, resumed step)."""
    dims = check_layout(cfg, world_size)
    check_eval_tasks(cfg)
    data = open_data(cfg, model_args(cfg))
    check_initial_load(cfg, model_args(cfg))
    start = resume_step(cfg) or 0
    notes = check_resume(cfg, start) if start else []
    if rank == 0:
        for note in notes:
            print(note, flush=True)
    return dims, data, start


def _loader(dataset, cfg: TrainConfig, dims: ParallelDims, *, shuffle: bool) -> StepLoader:
    dp_rank = dims.dp_mesh().get_local_rank() if dims.dp_enabled else 0
    t = cfg.training
    return StepLoader(
        dataset,
        global_batch_size=t.global_batch_size,
        micro_batch_size=t.micro_batch_size,
        dp_rank=dp_rank,
        dp_size=dims.dp_size,
        seed=t.seed,
        shuffle=shuffle,
    )


def build_run(
    cfg: TrainConfig, dims: ParallelDims, data: RunData, start: int, rank: int, world_size: int, device
) -> Run:
    """Mesh, loaders, model parts, optimizers and schedules, restored from checkpoint `start` if set."""
    if world_size > 1:
        dims.build_mesh(device.type)
    set_determinism(cfg.training.seed, deterministic=cfg.training.deterministic)
    args = model_args(cfg)
    parts, pipe = init_model(args, dims, cfg, device)
    # One optimizer per model part (pipeline stage), so each state dict maps to its parameters' names.
    optimizers = [build_optimizer([part], cfg) for part in parts]
    total_steps, lr_segments = lr_schedule(cfg)  # with stages: their sum, and their own segments
    schedulers = [build_lr_scheduler(opt, cfg.lr, total_steps, lr_segments) for opt in optimizers]
    loader = _loader(data.train, cfg, dims, shuffle=cfg.data.shuffle)
    plan = plan_stages(cfg)
    if plan:  # the loader of the stage the checkpoint is in (its state names the stage)
        loader = resumed_loader(plan, data.stages, loader, start)
    run_dir = Path(cfg.run.dir)
    config_yaml = OmegaConf.to_yaml(OmegaConf.structured(cfg))
    ema = WeightEma(parts, cfg.ema) if cfg.ema.enabled else None  # the checkpoint loads restore it
    ckpt = Checkpointer(
        cfg.checkpoint, run_dir, parts, optimizers, schedulers, loader,
        rank=rank, world_size=world_size, config_yaml=config_yaml, ema=ema,
    )  # fmt: skip
    if start:
        ckpt.load(start)
        if cfg.checkpoint.override_opt_schedule:
            for opt, sched in zip(optimizers, schedulers, strict=True):
                apply_configured_schedule(opt, sched, cfg)
    elif cfg.checkpoint.initial_load_path:
        ckpt.load_model_only(cfg.checkpoint.initial_load_path)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / "config.yaml.tmp"
        tmp.write_text(config_yaml)
        tmp.replace(run_dir / "config.yaml")
    # Single process: autocast gives bf16 compute. Under FSDP its MixedPrecisionPolicy does that.
    dtype = DTYPES[cfg.training.dtype]
    run = Run(
        cfg, dims, rank, world_size, device, args, parts, pipe, optimizers, schedulers, loader,
        val_loader=_loader(data.val, cfg, dims, shuffle=False) if data.val is not None else None,
        tokenizer=data.tokenizer,
        ckpt=ckpt,
        logger=MetricsLogger(
            run_dir, enabled=rank == 0, tensorboard=cfg.metrics.tensorboard, resume_step=start
        ),
        hooks=step_hooks(cfg.debug, rank),
        start=start,
        ema=ema,
    )  # fmt: skip
    if dtype != torch.float32 and not dims.fsdp_enabled:
        run.autocast = lambda: torch.autocast(device.type, dtype=dtype)
    if dims.tp_enabled and cfg.parallel.loss_parallel:
        run.loss_ctx = loss_parallel
    run.plan, run.stage_data = plan, data.stages
    return run


def describe(run: Run) -> str:
    cfg, dims = run.cfg, run.dims
    return (
        f"model {cfg.model.name}: {run.args.num_params() / 1e6:.1f}M params, world_size={run.world_size}, "
        f"dp={dims.dp_size} cp={dims.cp} tp={dims.tp} pp={dims.pp}, "
        f"micro-batches per step={run.loader.accumulation_steps}, "
        f"{len(run.loader.dataset)} train sequences of {run.loader.dataset.seq_len} tokens"
        + (f", resuming after step {run.start}" if run.start else "")
    )


@dataclass
class StepOutcome:
    loss: float
    grad_norm: float
    lr: float
    spike: bool


def forward_backward(run: Run, step: int) -> tuple[torch.Tensor, float]:
    """Loss of the global batch with gradients in place, and the seconds spent waiting for data."""
    run.hooks.before_step(step)
    t0 = time.perf_counter()
    micro_batches = run.loader.next_step()
    data_wait = time.perf_counter() - t0
    if run.pipe is not None:
        loss = pipeline_train_step(run.pipe, micro_batches, run.dims, run.device, run.loss_ctx)
    else:
        loss = train_step(run.parts[0], micro_batches, run.dims, run.device, run.autocast, run.loss_ctx)
    run.hooks.after_backward(step, run.params)
    return loss, data_wait


def should_update(run: Run, step: int, loss: float, grad_norm: float, spike: bool) -> bool:
    """Apply this step? Non-finite steps are skipped up to the limit, then the run stops (exit 4).

    Every rank sees the same all-reduced loss and norm, so all ranks decide alike.
    """
    t = run.cfg.training
    if not (math.isfinite(loss) and math.isfinite(grad_norm)):
        run.skipped += 1
        what = f"step {step}: loss={loss}, grad_norm={grad_norm}"
        if run.skipped > t.max_nonfinite_skips:
            raise TrainingStopped(
                EXIT_NONFINITE,
                f"{what}; non-finite steps: {run.skipped} > training.max_nonfinite_skips="
                f"{t.max_nonfinite_skips}. Stopped before the optimizer applied it; the latest checkpoint "
                "is the last good state (lower optim.lr and resume with "
                "checkpoint.override_opt_schedule=true to apply it, or check the data)",
                step,
            )
        if run.rank == 0:
            print(f"{what}: skipped ({run.skipped}/{t.max_nonfinite_skips})", flush=True)
        return False
    if spike and run.rank == 0:
        print(f"step {step}: loss spike {loss:.4f}" + (" (skipped)" if t.skip_spikes else ""), flush=True)
    return not (spike and t.skip_spikes)


def optimizer_step(run: Run, step: int, spikes: SpikeDetector) -> tuple[StepOutcome, float]:
    """One training step: forward/backward, clip, then update (or skip) and advance the schedule."""
    loss_t, data_wait = forward_backward(run, step)
    grad_norm_t = clip_grad_norm_(run.params, run.cfg.training.max_norm, pp_group=run.dims.pp_group())
    loss, grad_norm = loss_t.item(), grad_norm_t.item()
    spike = math.isfinite(loss) and spikes.update(loss)
    lr = run.schedulers[0].get_last_lr()[0]
    if should_update(run, step, loss, grad_norm, spike):
        for opt in run.optimizers:
            opt.step()
        if run.ema is not None:
            run.ema.update(step)
    for opt, sched in zip(run.optimizers, run.schedulers, strict=True):
        sched.step()
        opt.zero_grad(set_to_none=True)
    return StepOutcome(loss, grad_norm, lr, spike), data_wait


@dataclass
class Window:
    """Training time and steps since the last metrics line (validation excluded)."""

    start: float = field(default_factory=time.perf_counter)
    steps: int = 0
    tokens: int = 0
    """Tokens of those steps (a training stage may change seq_len and batch size)."""
    data_wait: float = 0.0


def step_metrics(run: Run, step: int, out: StepOutcome, window: Window, elapsed: float) -> StepMetrics:
    tokens_per_s = window.tokens / elapsed
    seq = run.loader.dataset.seq_len  # the stage's
    tflops = run.args.flops_per_token(seq) * tokens_per_s / run.world_size / 1e12  # per device
    peak = peak_tflops(run.cfg.metrics.peak_tflops, run.device)
    return StepMetrics(
        step=step,
        loss=out.loss,
        lr=out.lr,
        grad_norm=out.grad_norm,
        tokens_per_s=tokens_per_s,
        tflops=tflops,
        mfu=tflops / peak if peak else None,
        mem_gib=memory_gib(run.device),
        data_wait_s=window.data_wait / window.steps,
        skipped_steps=run.skipped or None,
        loss_spike=out.spike or None,
        stage=run.stage.name if run.stage else None,
    )


def evaluate_tasks(run: Run, step: int, watchdog: Watchdog) -> dict[str, float] | None:
    """eval.tasks scored on the training parts when due (all ranks): the metrics keys, else None."""
    cfg = run.cfg
    if not eval_due(cfg.eval, step, step == cfg.training.steps):
        return None
    watchdog.pause(cfg.training.first_step_timeout_s)  # evaluation is not a hung step
    results, seconds = evaluate_in_loop(run.parts, run.dims, run.device, cfg, run.tokenizer, run.autocast)
    if run.rank == 0:
        print(summary_line(step, results, seconds), flush=True)
    return metric_keys(results, seconds)


def checkpoint_or_stop(run: Run, step: int, last: bool, signals: StopSignals, watchdog: Watchdog) -> None:
    """Save when due; on SIGTERM/SIGUSR1 (agreed by all ranks) save now and stop with exit 3."""
    t = run.cfg.training
    if step == run.start + 1:
        shorten_pg_timeout(1.5 * t.step_timeout_s)
    watchdog.beat(step)
    run.ckpt.poll()
    signum = signals.requested()
    if signum:
        watchdog.pause(t.first_step_timeout_s)
        if run.cfg.checkpoint.enabled:
            run.ckpt.save(step, sync=True)
        name = signal.Signals(signum).name
        raise TrainingStopped(EXIT_PREEMPTED, f"{name} received: stopped after step {step}", step)
    if run.ckpt.should_save(step, last):
        watchdog.pause(t.first_step_timeout_s)
        run.ckpt.save(step, sync=last)


def train_loop(run: Run) -> TrainResult:
    """Steps start+1 .. training.steps: update, validate, evaluate, log, checkpoint or stop."""
    cfg, t = run.cfg, run.cfg.training
    result = TrainResult()
    signals = StopSignals()
    watchdog = Watchdog(t.first_step_timeout_s, t.step_timeout_s, run.rank)
    spikes = SpikeDetector(t.spike_window, t.spike_zscore)
    window = Window()
    for part in run.parts:
        part.train()
    try:
        for step in range(run.start + 1, t.steps + 1):
            run.step = step
            if enter_stage(run, step):  # new shapes may recompile, new data moves the loss level
                watchdog.pause(t.first_step_timeout_s)
                spikes.history.clear()
            out, data_wait = optimizer_step(run, step, spikes)
            result.losses.append(out.loss)
            window.steps += 1
            window.tokens += run.loader.global_batch_size * run.loader.dataset.seq_len
            window.data_wait += data_wait
            last = step == t.steps
            elapsed = time.perf_counter() - window.start  # before validation and evaluation
            val_loss = None
            if run.val_loader is not None and (step % cfg.validation.interval == 0 or last):
                val_loss = validate(
                    run.parts, run.pipe, run.val_loader, cfg.validation.steps, run.dims, run.device,
                    run.autocast, run.loss_ctx,
                )  # fmt: skip
                result.val_losses[step] = val_loss
            evals = evaluate_tasks(run, step, watchdog)
            if evals is not None:
                result.evals[step] = evals
            # A line at every validation and evaluation: their time stays out of the next window, and
            # their keys share the step's line, which a resume's truncation drops with it.
            logged = val_loss is not None or evals is not None
            if step % cfg.metrics.log_interval == 0 or step == run.start + 1 or last or logged:
                metrics = step_metrics(run, step, out, window, elapsed)
                metrics.val_loss, metrics.evaluation = val_loss, evals
                run.logger.log(metrics)
                window = Window()
            checkpoint_or_stop(run, step, last, signals, watchdog)
    finally:
        watchdog.close()
        signals.restore()
    if t.sample_prompt:  # the tokenizer may be there for evaluation only
        result.sample = sample(full_state_dict(run.parts, run.dims, run.rank), run.args, cfg, run.tokenizer)
        if run.rank == 0:
            print(f"sample: {result.sample}", flush=True)
    return result


def _record_exit(cfg: TrainConfig, rank: int, code: int, reason: str, step: int) -> None:
    if rank == 0:
        write_exit_record(Path(cfg.run.dir), code, reason, step)


def train(cfg: TrainConfig | DictConfig) -> TrainResult:
    """Check everything, then build and run; `run.dir/exit.json` records how it ended."""
    rank = int(os.environ.get("RANK", "0"))
    if isinstance(cfg, DictConfig):
        cfg = typed_config(cfg)
    else:
        check_config(cfg)
    try:
        dims, data, start = preflight(cfg, int(os.environ.get("WORLD_SIZE", "1")), rank)
    except ConfigError as e:
        if Path(cfg.run.dir).is_dir():  # never leave a previous run's "finished" standing
            _record_exit(cfg, rank, EXIT_CONFIG, str(e), 0)
        raise
    rank, world_size, device = init_distributed()
    run = None
    try:
        run = build_run(cfg, dims, data, start, rank, world_size, device)
        if rank == 0:
            print(describe(run), flush=True)
        result = train_loop(run)
        _record_exit(cfg, rank, EXIT_OK, "finished", cfg.training.steps)
        return result
    except TrainingStopped as stop:
        if rank == 0:
            print(f"stopping (exit {stop.code}): {stop.reason}", file=sys.stderr, flush=True)
        _record_exit(cfg, rank, stop.code, stop.reason, stop.step)
        raise
    except BaseException as e:
        _record_exit(cfg, rank, EXIT_ERROR, f"{type(e).__name__}: {e}", run.step if run else start)
        raise
    finally:
        if run is not None:
            run.close()
        if dist.is_initialized():
            dist.destroy_process_group()


USAGE = """usage: python -m pretrain.train [--check] [key=value ...]   (or torchrun ... -m pretrain.train ...)

Overrides of configs/train.yaml, Hydra syntax: groups (model=llama3_8b, lr=wsd) and keys
(training.steps=1000, optim.lr=3e-4). Every key, its default and its range: pretrain/job_config.py.
A bad config, layout, data set or checkpoint to resume is reported as one line, with exit code 2,
before anything runs. --check runs only those checks (for WORLD_SIZE ranks) and exits."""

PEER_EXIT_DELAY_S = 5.0
"""On a config error, ranks other than 0 wait this long before exiting: torchrun stops the other
ranks as soon as one exits, and rank 0 is the one that prints the error."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return EXIT_OK
    check_only = "--check" in argv
    rank = int(os.environ.get("RANK", "0"))
    try:
        cfg = compose_config([a for a in argv if a != "--check"], data_path=None)
        if check_only:
            _, data, start = preflight(cfg, int(os.environ.get("WORLD_SIZE", "1")), rank)
            resume = f", resuming step {start}" if start else ""
            print(f"config ok: {len(data.train)} training sequences{resume}", flush=True)
        else:
            train(cfg)
    except ConfigError as e:
        if rank == 0:
            print(f"config error: {e}", file=sys.stderr, flush=True)
        elif "LOCAL_WORLD_SIZE" in os.environ:  # under torchrun
            time.sleep(PEER_EXIT_DELAY_S)
        return EXIT_CONFIG
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
