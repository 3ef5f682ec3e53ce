"""Context parallelism on CPU: step time and activation memory per rank for cp 1/2/4 at one total
sequence length, against pretrain.estimate.

    python bench/bench_cp.py [--cps 1,2,4] [--seq 2048] [--rows 2] [--steps 3] [--smoke]

Each cp degree runs in spawned ranks on gloo (one torch thread per rank, bench/bench_layouts.py's
runner) through the trainer's code: `pretrain.build.init_model`, `pretrain.step.train_step` (which
cuts every micro-batch into the rank's head and tail chunks), AdamW. Rows are packed with documents
of random lengths, so attention runs under real document masks.

Activation memory is what autograd saves for backward during one micro-batch's forward: the bytes
of the distinct storages packed by `torch.autograd.graph.saved_tensors_hooks`, parameters (and
views of them) left out — the quantity `pretrain.estimate` calls activations. With cp ranks each
holds 1/cp of the tokens, except the all-gathered K and V that attention keeps for backward.
On a 2-core machine cp4 oversubscribes the cores: its step time shows overhead, not scaling.
Prints the table and appends it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_layouts import run_layout  # noqa: E402

from pretrain.estimate import estimate  # noqa: E402
from pretrain.job_config import TrainConfig  # noqa: E402

MIB = 2**20


def _is_param(t: torch.Tensor) -> bool:
    return isinstance(t, torch.nn.Parameter) or isinstance(getattr(t, "_base", None), torch.nn.Parameter)


@contextlib.contextmanager
def saved_bytes(out: list[int]):
    """Sum, into out[0], the distinct storages autograd saves for backward (parameters excluded)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        if not _is_param(t):
            s = t.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield
    out[0] = sum(seen.values())


def packed_batch(step: int, rows: int, seq: int, vocab: int):
    """Rows of packed documents of random lengths (positions restart in each)."""
    from pretrain.data import Batch

    g = torch.Generator().manual_seed(step)
    tokens = torch.randint(0, vocab, (rows, seq + 1), generator=g)
    doc_ids = torch.zeros(rows, seq, dtype=torch.int64)
    positions = torch.arange(seq).repeat(rows, 1)
    for r in range(rows):
        for cut in sorted(torch.randint(1, seq, (4,), generator=g).tolist()):
            doc_ids[r, cut:] += 1
            positions[r, cut:] -= positions[r, cut].clone()
    return Batch(tokens[:, :-1], tokens[:, 1:].clone(), doc_ids, positions)


def _worker(rank: int, world: int, store: str, queue, cfg, warmup: int, steps: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    import torch.distributed as dist

    from parallel.dims import ParallelDims
    from pretrain.build import build_optimizer, init_model
    from pretrain.configs import get_model_config
    from pretrain.step import train_step

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        p, t = cfg.parallel, cfg.training
        dims = ParallelDims(p.dp_replicate, p.dp_shard, p.tp, p.pp, world, cp=p.cp)
        dims.build_mesh("cpu")
        args = get_model_config(cfg.model.name, **cfg.model.overrides())
        device = torch.device("cpu")
        parts, _ = init_model(args, dims, cfg, device, full_init=True)
        optimizer = build_optimizer(parts, cfg)
        wall, activations = [], [0]
        for step in range(warmup + steps):
            full = packed_batch(step, t.global_batch_size, cfg.data.seq_len, args.vocab_size)
            micro = [full]  # one micro-batch of all rows: the saved bytes are one forward's
            dist.barrier()
            t0 = time.perf_counter()
            with saved_bytes(activations) if step == warmup else contextlib.nullcontext():
                loss = train_step(parts[0], micro, dims, device, contextlib.nullcontext)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            dist.barrier()
            if step >= warmup:
                wall.append(time.perf_counter() - t0)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        queue.put((rank, {"wall": wall, "loss": float(loss), "activations": activations[0], "rss": rss}))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def config(a, cp: int) -> TrainConfig:
    cfg = TrainConfig()
    cfg.model.name, cfg.model.vocab_size, cfg.model.max_seq_len = a.model, a.vocab_size, a.seq
    cfg.data.seq_len = a.seq
    cfg.training.global_batch_size = cfg.training.micro_batch_size = a.rows
    cfg.parallel.dp_shard, cfg.parallel.cp = 1, cp
    return cfg


def kv_gather_mib(cfg: TrainConfig, cp: int) -> float:
    """K and V bytes each rank receives per step in forward (fp32): (cp-1)/cp of the whole row's K/V."""
    from pretrain.configs import get_model_config

    args = get_model_config(cfg.model.name, **cfg.model.overrides())
    per_block = 2 * cfg.training.global_batch_size * cfg.data.seq_len * args.kv_heads * args.head_dim * 4
    return per_block * args.n_layers * (cp - 1) / cp / MIB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cps", default="1,2,4")
    ap.add_argument("--model", default="llama3_debug")
    ap.add_argument("--vocab-size", type=int, default=2048)
    ap.add_argument("--seq", type=int, default=2048, help="total tokens per row (split over cp ranks)")
    ap.add_argument("--rows", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("--smoke", action="store_true", help="cp 1,2 at 64 tokens, 1 step; appends nothing")
    a = ap.parse_args()
    if a.smoke:
        a.cps, a.seq, a.warmup, a.steps = "1,2", 64, 0, 1
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    rows, base = [], None
    for cp in [int(c) for c in a.cps.split(",")]:
        cfg = config(a, cp)
        est = estimate(cfg, dtype="fp32")
        print(f"cp{cp}: {cp} rank(s) ...", flush=True)
        res = run_layout(cfg, cp, a.warmup, a.steps, worker=_worker)
        step_s = statistics.median(max(r["wall"][i] for r in res) for i in range(a.steps))
        act = max(r["activations"] for r in res)
        base = base or (step_s, act)
        want = est.ranks[0].activations
        rows.append(
            f"| cp{cp} | {cp} | {step_s:.3f} | {a.rows * a.seq / step_s:,.0f} | {step_s / base[0]:.2f}x | "
            f"{act / MIB:.1f} | {act / base[1]:.2f} | {want / MIB:.1f} | {act / want:.2f} | "
            f"{kv_gather_mib(cfg, cp):.1f} | {max(r['rss'] for r in res) / MIB:,.0f} | {res[0]['loss']:.4f} |"
        )
    head = (
        "| layout | ranks | step s | tokens/s | vs cp1 | saved activations MiB/rank | vs cp1 | "
        "estimate MiB/rank | measured/estimate | K/V gathered MiB/rank/step | peak RSS MiB | loss |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    text = (
        f"\n## Context parallelism on CPU ({datetime.date.today()}, {platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__})\n\n"
        f"`python bench/bench_cp.py --cps {a.cps} --seq {a.seq} --rows {a.rows} --steps {a.steps}`: "
        f"{a.model} (vocab {a.vocab_size}), {a.rows} rows x {a.seq} tokens per step, fp32, gloo, "
        "one thread per rank.\n\n" + head + "\n".join(rows) + "\n"
    )
    print(text)
    if not a.smoke:
        with open(a.results, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
