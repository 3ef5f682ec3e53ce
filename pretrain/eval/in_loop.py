"""Evaluation inside the training loop (`eval.*`): the trainer's own parts, and no trace on training.

Every `eval.interval` steps (and after the last) every rank calls `evaluate_in_loop` after the
optimizer step, on the parts exactly as training holds them (FSDP, TP, pipeline stages), so there is
no second copy of the weights and no gather to one rank. Evaluation only reads the weights: the
forwards run under no_grad (no gradient buffer is created), the scorer puts each part back in the
mode it found it in, and the RNG states of the CPU and the device are restored afterwards: nothing
here draws from them today, but a later change that did (dropout, sampling) must not shift the
training run's random stream. The data loader and the optimizer are never seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from parallel.dims import ParallelDims
from pretrain.eval.evaluate import evaluate
from pretrain.eval.layout import layout_from_dims
from pretrain.eval.metrics import METRICS
from pretrain.eval.scorer import ScoreOptions
from pretrain.eval.tokenize import EvalTokenizer
from pretrain.job_config import EvalConfig, TrainConfig


def eval_due(cfg: EvalConfig, step: int, last: bool) -> bool:
    """Whether step `step` ends with an evaluation."""
    return bool(cfg.tasks) and (step % cfg.interval == 0 or last)


def evaluate_in_loop(
    parts: list[nn.Module],
    dims: ParallelDims,
    device: torch.device,
    cfg: TrainConfig,
    tokenizer: EvalTokenizer,
    autocast: Callable,
) -> tuple[dict[str, dict], float]:
    """(`evaluate`'s results, seconds) for eval.tasks on this rank's training parts; all ranks call it.

    `autocast` is the training step's, so a single-process bf16 run evaluates in bf16 as it trains
    (under FSDP the mixed-precision policy does that by itself).
    """
    p = cfg.parallel
    layout = layout_from_dims(parts, dims, device, schedule=p.pp_schedule, per_rank=p.pp_stages_per_rank)
    options = ScoreOptions(batch_tokens=cfg.eval.batch_tokens)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), autocast():
        results = evaluate(layout, tokenizer, cfg.eval.tasks, cfg.eval.limit, options)
    return results, time.perf_counter() - start


def metric_keys(results: dict[str, dict], seconds: float) -> dict[str, float]:
    """The metrics.jsonl (and TensorBoard) keys: `eval/<task>/<metric>` and `eval/seconds`."""
    out = {f"eval/{task}/{m}": r[m] for task, r in results.items() for m in (*METRICS, "n")}
    out["eval/seconds"] = seconds
    return out


def summary_line(step: int, results: dict[str, dict], seconds: float) -> str:
    """One console line: every task's OLMES primary metric (acc for a task without one)."""
    cells = []
    for task, r in results.items():
        metric = r.get("primary_metric") or "acc"
        cells.append(f"{task} {metric} {r[metric]:.4f}")
    return f"step {step:>6}  eval  " + "  ".join(cells) + f"  ({seconds:.1f}s)"
