"""CPU step time of every parallel layout of the debug model, and memory per rank vs pretrain.estimate.

    python bench/bench_layouts.py [--layouts 1proc,dp2,tp2,...] [--vocab-size 2048] [--seq 256] [--steps 5]

Each layout runs in its own spawned processes on gloo (one torch thread per rank), through the
trainer's own code: a `TrainConfig` with the layout's `parallel.*` fields, `pretrain.build.init_model`
(full init) / `build_optimizer`, `pretrain.step.train_step` or `pipeline_train_step`,
`parallel.utils.clip_grad_norm_`, AdamW. After warm-up (a pipeline's first
step also infers its shapes), N steps are timed between barriers; the median is reported.

On a 2-core CPU, 4 or 8 ranks oversubscribe the cores: the step times show communication and
scheduling overhead per layout, not scaling. `CPU s/step` sums the CPU time of all ranks.

After the timed steps each rank sums the bytes of its local parameter shards (`to_local()` of
DTensors), gradient shards (taken before the last zero_grad) and AdamW moments (`exp_avg`,
`exp_avg_sq`; the scalar `step` is left out), which are compared per pipeline rank with
`pretrain.estimate.estimate(cfg, dtype="fp32")` for the same config. Activation terms of the
estimator model GPU kernels and are not compared; peak RSS is shown for information.
Prints the tables and appends them to bench/RESULTS.md.
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
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain.configs import get_model_config  # noqa: E402
from pretrain.estimate import estimate  # noqa: E402
from pretrain.job_config import TrainConfig  # noqa: E402

MIB = 2**20
LAYOUTS = {
    "1proc": {},
    "dp2": {"dp_shard": 2},
    "tp2": {"tp": 2},
    "pp2-1F1B": {"pp": 2, "pp_schedule": "1F1B"},
    "pp2-ZBV": {"pp": 2, "pp_schedule": "ZBVZeroBubble"},
    "dp2xtp2": {"dp_shard": 2, "tp": 2},
    "dp2xpp2": {"dp_shard": 2, "pp": 2},
    "tp2xpp2": {"tp": 2, "pp": 2},
    "dp2xtp2xpp2": {"dp_shard": 2, "tp": 2, "pp": 2},
}


def _nbytes(t: torch.Tensor) -> int:
    from torch.distributed.tensor import DTensor

    local = t.to_local() if isinstance(t, DTensor) else t
    return local.numel() * local.element_size()


def _storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind the local tensors (FSDP pads its shards in storage)."""
    from torch.distributed.tensor import DTensor

    seen = {}
    for t in tensors:
        s = (t.to_local() if isinstance(t, DTensor) else t).untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def _worker(rank: int, world: int, store: str, queue, cfg, warmup: int, steps: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    import torch.distributed as dist
    from torch.distributed.tensor.parallel import loss_parallel

    from parallel.dims import ParallelDims
    from parallel.utils import clip_grad_norm_
    from pretrain.build import build_optimizer, init_model
    from pretrain.configs import get_model_config
    from pretrain.data import Batch
    from pretrain.step import pipeline_train_step, train_step

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        p, t = cfg.parallel, cfg.training
        dims = ParallelDims(p.dp_replicate, p.dp_shard, p.tp, p.pp, world, cp=p.cp)
        dims.build_mesh("cpu")
        args = get_model_config(cfg.model.name, **cfg.model.overrides())
        device = torch.device("cpu")
        parts, pipe = init_model(args, dims, cfg, device, full_init=True)
        optimizer = build_optimizer(parts, cfg)
        params = [q for part in parts for q in part.parameters()]
        loss_ctx = loss_parallel if dims.tp_enabled and p.loss_parallel else contextlib.nullcontext
        dp_rank = dims.dp_mesh().get_local_rank() if dims.dp_enabled else 0
        rows, seq, micro = t.global_batch_size // dims.dp_size, cfg.data.seq_len, t.micro_batch_size

        def micro_batches(step: int) -> list:
            g = torch.Generator().manual_seed(step)
            x = torch.randint(0, args.vocab_size, (t.global_batch_size, seq + 1), generator=g)
            x = x[dp_rank * rows : (dp_rank + 1) * rows]
            doc_ids = torch.zeros(rows, seq, dtype=torch.int64)
            positions = torch.arange(seq).expand(rows, seq).contiguous()
            full = (x[:, :-1], x[:, 1:].clone(), doc_ids, positions)
            return [Batch(*(f[i : i + micro] for f in full)) for i in range(0, rows, micro)]

        wall, cpu, grads = [], [], []
        for step in range(warmup + steps):
            batches = micro_batches(step)
            dist.barrier()
            t0, c0 = time.perf_counter(), time.process_time()
            if pipe is not None:
                loss = pipeline_train_step(pipe, batches, dims, device, loss_ctx)
            else:
                loss = train_step(parts[0], batches, dims, device, contextlib.nullcontext, loss_ctx)
            clip_grad_norm_(params, t.max_norm, pp_group=dims.pp_group())
            grads = [q.grad for q in params if q.grad is not None]
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            dist.barrier()
            if step >= warmup:
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        moments = [v for s in optimizer.state.values() for k, v in s.items() if k != "step"]
        queue.put(
            (
                rank,
                {
                    "pp_rank": dims.local_rank("pp"),
                    "wall": wall,
                    "cpu": cpu,
                    "loss": float(loss),
                    "params": sum(_nbytes(q) for q in params),
                    "grads": sum(_nbytes(g) for g in grads),
                    "optim": sum(_nbytes(v) for v in moments),
                    "param_storage": _storage_bytes(params),
                    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                },
            )
        )
        dist.barrier()  # leave together: a rank tearing gloo down early makes its peers abort
    finally:
        dist.destroy_process_group()


def run_layout(cfg, world: int, warmup: int, steps: int, timeout: float = 900, worker=None) -> list[dict]:
    """Spawn `world` ranks running `worker` (default `_worker`); their results in rank order."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        queue = mp.get_context("spawn").SimpleQueue()
        procs = mp.start_processes(
            worker or _worker,
            args=(world, os.path.join(tmp, "store"), queue, cfg, warmup, steps),
            nprocs=world,
            start_method="spawn",
            join=False,
        )
        results: dict[int, dict] = {}
        start = time.monotonic()
        while len(results) < world:  # drain while they run; join() raises on a failed rank
            while not queue.empty():
                rank, value = queue.get()
                results[rank] = value
            if len(results) < world and procs.join(timeout=1) and queue.empty():
                raise RuntimeError(f"ranks exited with results from {sorted(results)} only")
            if time.monotonic() - start > timeout:
                for proc in procs.processes:
                    proc.kill()
                raise TimeoutError(f"layout still running after {timeout:.0f} s")
        while not procs.join(timeout=60):
            pass
    return [results[r] for r in range(world)]


def config(a, parallel: dict) -> tuple[TrainConfig, list[str]]:
    """The layout's trainer config and the same as `key=value` overrides (for pretrain.estimate's CLI)."""
    cfg = TrainConfig()
    cfg.model.name, cfg.model.vocab_size, cfg.data.seq_len = a.model, a.vocab_size, a.seq
    cfg.training.global_batch_size, cfg.training.micro_batch_size = a.batch, a.micro
    cfg.parallel.dp_shard = 1
    for key, value in parallel.items():
        setattr(cfg.parallel, key, value)
    cli = [f"model={a.model}", f"model.vocab_size={a.vocab_size}", f"data.seq_len={a.seq}"]
    cli += [f"training.global_batch_size={a.batch}", f"training.micro_batch_size={a.micro}"]
    return cfg, cli + [f"parallel.{k}={v}" for k, v in {"dp_shard": 1, **parallel}.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma-separated, of {', '.join(LAYOUTS)}")
    ap.add_argument("--model", default="llama3_debug")
    ap.add_argument("--vocab-size", type=int, default=2048, help="e.g. 128256 for Llama 3's")
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8, help="global batch (rows)")
    ap.add_argument("--micro", type=int, default=2, help="micro-batch rows (pipelines need >= pp per step)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    a = ap.parse_args()
    names = [n.strip() for n in a.layouts.split(",") if n.strip()]
    unknown = sorted(set(names) - set(LAYOUTS))
    if unknown:
        ap.error(f"unknown layouts {unknown}; known: {', '.join(LAYOUTS)}")
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned ranks
    torch.set_num_threads(1)

    load_before = os.getloadavg()
    timing, memory, examples, notes = [], [], {}, []
    base = None
    n_params = 0
    for name in names:
        cfg, cli = config(a, LAYOUTS[name])
        est = estimate(cfg, dtype="fp32")
        examples[name] = " ".join(cli)
        n_params = est.num_params
        print(f"{name}: {est.world_size} rank(s) ...", flush=True)
        res = run_layout(cfg, est.world_size, a.warmup, a.steps)
        step_s = statistics.median(max(r["wall"][i] for r in res) for i in range(a.steps))
        cpu_s = statistics.median(sum(r["cpu"][i] for r in res) for i in range(a.steps))
        base = (step_s, cpu_s) if name == "1proc" else base
        timing.append((name, est.world_size, step_s, cpu_s, max(r["rss"] for r in res) / MIB, res[0]["loss"]))
        dim = get_model_config(cfg.model.name, **cfg.model.overrides()).dim
        embed_excess = 4 * a.vocab_size * dim * (1 - 1 / cfg.parallel.tp)
        for er in est.ranks:
            mine = [r for r in res if r["pp_rank"] == er.pp_rank]
            row = [name, str(er.pp_rank), str(len(mine))]
            for key, want in (("params", er.params), ("grads", er.grads), ("optim", er.optimizer)):
                got = [r[key] for r in mine]
                spread = "" if min(got) == max(got) else f" (ranks {min(got) / MIB:.3f}-{max(got) / MIB:.3f})"
                row += [f"{max(got) / MIB:.3f}{spread}", f"{want / MIB:.3f}", f"{max(got) / want:.3f}"]
                if abs(max(got) / want - 1) > 0.02:
                    delta = max(got) - want
                    why = (
                        ": = vocab x dim x 4 B x (1 - 1/tp), the TP embedding gradient is Replicate "
                        "(whole) on every TP rank while its parameter is Shard(0)"
                        if embed_excess and abs(delta - embed_excess) < 1024
                        else ""
                    )
                    notes.append(f"{name} pp rank {er.pp_rank} {key}: measured {delta / MIB:+.3f} MiB{why}")
            storage = max(r["param_storage"] for r in mine)
            row.append(f"{storage / max(r['params'] for r in mine):.3f}")
            memory.append(row)
    load_after = os.getloadavg()

    tokens = a.batch * a.seq
    t_rows = "".join(
        f"| {n} | {w} | {s:.3f} | {tokens / s:,.0f} | "
        + (f"{s / base[0]:.2f}x | {c:.3f} | {c / base[1]:.2f}x" if base else f"- | {c:.3f} | -")
        + f" | {rss:,.0f} | {loss:.4f} |\n"
        for n, w, s, c, rss, loss in timing
    )
    m_rows = "".join("| " + " | ".join(r) + " |\n" for r in memory)
    fmt = "{:.2f} {:.2f} {:.2f}"
    text = (
        f"## Parallel layouts on CPU: step time, memory per rank vs pretrain.estimate — "
        f"{datetime.datetime.now().isoformat(timespec='seconds')}\n\n"
        f"- command: `OMP_NUM_THREADS=1 python {' '.join(sys.argv)}`\n"
        f"- machine: {platform.machine()}, nproc={os.cpu_count()}, torch {torch.__version__}, gloo, "
        f"1 torch thread per rank; load average before: {fmt.format(*load_before)}, "
        f"after: {fmt.format(*load_after)}\n"
        f"- model: {a.model} ({n_params / 1e6:.1f}M params, vocab {a.vocab_size}), fp32, global batch "
        f"{a.batch} x seq {a.seq}, micro-batch {a.micro}; {a.warmup} warm-up steps, median of {a.steps} "
        "timed steps (forward, backward, clip, AdamW), each between barriers\n"
        f"- {os.cpu_count()} cores shared by up to {max(w for _, w, *_ in timing)} ranks: these step "
        "times show the communication and scheduling overhead of each layout, **not scaling**; "
        "`CPU s/step` is the CPU time of all ranks together (gloo threads included), so `CPU vs 1proc` "
        "is the overhead of a layout (1proc runs one thread on one core; 2+ ranks may use both cores)\n"
        f"- estimates: `python -m pretrain.estimate {examples[names[-1]]} --dtype fp32` "
        f"({names[-1]}; the other layouts likewise)\n\n"
        "| layout | ranks | step s (median) | tokens/s | step vs 1proc | CPU s/step | CPU vs 1proc "
        "| peak RSS MiB (max rank) | last loss |\n|---|---|---|---|---|---|---|---|---|\n"
        + t_rows
        + "\nMemory per rank, measured (local shards after the timed steps; max over the ranks of a "
        "pipeline rank, their range if they differ) vs `pretrain.estimate` (`--dtype fp32`, same "
        "overrides), MiB. `storage/params`: bytes of the parameters' storages over their elements' "
        "bytes (>1 where FSDP pads shards).\n\n"
        "| layout | pp rank | ranks | params | est | ratio | grads | est | ratio | optim | est | ratio "
        "| storage/params |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        + m_rows
        + "\nMeasured vs estimated, off by more than 2%:\n\n"
        + ("".join(f"- {n}\n" for n in notes) or "- none\n")
    )
    print("\n" + text)
    path = Path(a.results)
    if not path.exists():
        path.write_text("# Benchmark results\n")
    with path.open("a") as f:
        f.write("\n" + text)


if __name__ == "__main__":
    main()
