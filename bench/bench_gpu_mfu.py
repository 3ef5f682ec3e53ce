"""MFU of one training step on one GPU: Llama 3 8B dims, bf16, compiled blocks, document-masked attention.

    python bench/bench_gpu_mfu.py [--layers 8] [--seq 8192] [--batch 1] [--steps 10] [--attention flex]
    python bench/bench_gpu_mfu.py --smoke      # tiny shapes on the CPU: checks the script, no figures

Builds the model with the trainer's own code (`pretrain.build.init_model` on a 1-rank mesh: FSDP2's
mixed precision keeps fp32 master weights and computes in bf16, as a multi-GPU run does), packs
each row with documents of log-normal lengths (so the document mask matters, as in real packed
data), and times forward + backward + AdamW. MFU counts the model FLOPs of
`ModelArgs.flops_per_token` (6N + 12·L·d·s, torchtitan's convention) against the dense bf16 peak
(989 TFLOP/s for H100 SXM; `--peak-tflops`). With `--compare-sdpa` it also times the same step
with SDPA on the dense block-diagonal mask. Appends a table to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parallel.dims import ParallelDims  # noqa: E402
from pretrain.build import build_optimizer, init_model  # noqa: E402
from pretrain.configs import get_model_config  # noqa: E402
from pretrain.data import Batch  # noqa: E402
from pretrain.job_config import TrainConfig  # noqa: E402
from pretrain.metrics import peak_tflops  # noqa: E402
from pretrain.step import train_step  # noqa: E402


def packed_batch(batch: int, seq: int, vocab: int, device, seed: int = 0) -> Batch:
    """Rows of documents with log-normal lengths (median ~1.2K tokens, as web text after packing)."""
    rng = np.random.default_rng(seed)
    doc_ids = np.zeros((batch, seq), dtype=np.int64)
    positions = np.zeros((batch, seq), dtype=np.int64)
    for r in range(batch):
        start, doc = 0, 0
        while start < seq:
            n = int(min(seq - start, max(16, rng.lognormal(7.1, 1.0))))
            doc_ids[r, start : start + n] = doc
            positions[r, start : start + n] = np.arange(n)
            start, doc = start + n, doc + 1
    tokens = torch.from_numpy(rng.integers(0, vocab, (batch, seq + 1)))
    return Batch(
        tokens=tokens[:, :-1].to(device),
        labels=tokens[:, 1:].to(device),
        doc_ids=torch.from_numpy(doc_ids).to(device),
        positions=torch.from_numpy(positions).to(device),
    )


def run(a: argparse.Namespace, attention: str, device: torch.device) -> dict:
    overrides = {"n_layers": a.layers, "attention": attention, "max_seq_len": max(a.seq, 8192)}
    if a.smoke:
        overrides.update(
            dim=256, n_heads=8, n_kv_heads=4, multiple_of=64, ffn_dim_multiplier=None, vocab_size=2048
        )
    args = get_model_config("llama3_8b", **overrides)
    cfg = TrainConfig()
    cfg.training.dtype = "float32" if a.smoke else "bfloat16"
    cfg.training.global_batch_size = cfg.training.micro_batch_size = a.batch
    cfg.data.seq_len = a.seq
    cfg.parallel.compile = not a.no_compile
    cfg.parallel.activation_checkpoint = a.ac
    # One rank with dp_shard=1 still goes through FSDP2 so compute is bf16 with fp32 master weights.
    dims = ParallelDims(dp_shard=1, world_size=1)
    dims.build_mesh(device.type)
    parts, _ = init_model(args, dims, cfg, device, full_init=False)
    model = parts[0]
    if not a.smoke:
        from parallel.fsdp import apply_fsdp

        apply_fsdp(model, dims.mesh["dp_shard"], param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    optimizer = build_optimizer(parts, cfg)
    mb = packed_batch(a.batch, a.seq, args.vocab_size, device)
    times = []
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        train_step(model, [mb], dims, device, contextlib.nullcontext)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    tokens_s = a.batch * a.seq / step_s
    tflops = args.flops_per_token(a.seq) * tokens_s / 1e12
    peak = a.peak_tflops or peak_tflops(None, device)
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {
        "attention": attention,
        "params_b": args.num_params() / 1e9,
        "step_s": step_s,
        "tokens_s": tokens_s,
        "tflops": tflops,
        "mfu": tflops / peak if peak else float("nan"),
        "mem_gib": mem,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=8, help="8B blocks to keep (as many as fit: 8 ~ 50 GB)")
    ap.add_argument("--seq", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps (compile happens here)")
    ap.add_argument("--attention", default="flex", choices=("flex", "sdpa"))
    ap.add_argument("--compare-sdpa", action="store_true", help="also time SDPA on the dense mask")
    ap.add_argument("--ac", default="none", help="parallel.activation_checkpoint mode")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None, help="default: looked up from the GPU name")
    ap.add_argument("--smoke", action="store_true", help="tiny dims on the CPU, fp32, to test the script")
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    a = ap.parse_args()
    if a.smoke:
        a.layers, a.seq, a.steps, a.warmup, a.attention, a.no_compile = 2, 256, 2, 1, "sdpa", True
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if device.type != "cuda" and not a.smoke:
        sys.exit("needs a CUDA device (use --smoke to test the script on the CPU)")
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            init_method=f"file://{tmp}/store",
            rank=0,
            world_size=1,
        )
        try:
            rows = [run(a, a.attention, device)]
            if a.compare_sdpa and a.attention != "sdpa":
                rows.append(run(a, "sdpa", device))
        finally:
            dist.destroy_process_group()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke test)"
    cmd = "python bench/bench_gpu_mfu.py " + " ".join(sys.argv[1:])
    lines = [
        f"## GPU MFU, one device ({datetime.date.today()})",
        "",
        f"`{cmd}` on {name}, torch {torch.__version__}: Llama 3 8B dims, {a.layers} layers, seq {a.seq}, "
        f"batch {a.batch}, {'fp32' if a.smoke else 'bf16 compute (FSDP2 mixed precision)'}, "
        f"compile={not a.no_compile}, AC={a.ac}, "
        "packed rows of log-normal documents with document masking; median of "
        f"{a.steps} steps after {a.warmup} warm-up.",
        "",
        "| attention | params (B) | step (s) | tokens/s | TFLOP/s | MFU | peak mem (GiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['attention']} | {r['params_b']:.2f} | {r['step_s']:.3f} | {r['tokens_s']:,.0f} | "
            f"{r['tflops']:.1f} | {r['mfu']:.1%} | {r['mem_gib']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not a.smoke:
        with open(a.results, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
