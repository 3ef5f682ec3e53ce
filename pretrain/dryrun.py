"""Dry run of a parallel layout: one rank's real parameter shards, on meta tensors, without GPUs.

`python -m pretrain.dryrun model=llama3_405b parallel.tp=8 parallel.pp=16 parallel.dp_shard=128
data.seq_len=8192 --rank R` composes the trainer's own Hydra config, validates it with the
trainer's `pretrain.preflight.check_layout`, joins a fake process group of the full world size
(collectives are no-ops), builds the DeviceMesh and then this rank's pipeline stages with
`pretrain.build.build_parts`, the very code the trainer runs before it materialises weights.
Parameters stay on the meta device, so a 405B layout for rank 9000 of 16384 is checked in seconds
on a laptop. It reports every local shard's shape and bytes, plus gradient and AdamW state (two
fp32 moments), per stage and for the rank. Activations and the all-gathered FSDP units are not
counted. With context parallelism (parallel.cp) the mesh has a cp dim and FSDP shards every
parameter over dp_shard x cp ranks, as the trainer does (e.g. Llama 3's 131K-token layout:
model=llama3_405b model.max_seq_len=131072 parallel.tp=8 parallel.cp=16 parallel.pp=16
parallel.dp_shard=8 data.seq_len=131072). Exit code 2 means a bad layout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor
from torch.testing._internal.distributed.fake_pg import FakeStore  # registers the "fake" backend

from parallel.context_parallel import GatheredKVAttention
from parallel.dims import MESH_DIMS, ParallelDims
from pretrain import job_config
from pretrain.build import build_parts
from pretrain.configs import get_model_config
from pretrain.job_config import TrainConfig
from pretrain.preflight import check_layout

GPU_BYTES = 80 * 2**30
"""Memory of the 80 GiB H100 the Llama 3 405B run used, to put the per-rank state in proportion."""


class LayoutError(ValueError):
    """A layout or command line the dry run rejects (exit code 2)."""


def compose_config(overrides: list[str]) -> TrainConfig:
    try:
        return job_config.compose_config(overrides, data_path="dry-run")
    except ValueError as e:
        raise LayoutError(str(e)) from e


def default_world_size(cfg: TrainConfig) -> int:
    """Product of the degrees; dp_shard=-1 would make it circular, so it needs --world-size."""
    p = cfg.parallel
    if p.dp_shard == -1:
        raise LayoutError("parallel.dp_shard=-1 (auto) needs --world-size, or set parallel.dp_shard")
    return p.pp * p.dp_replicate * p.dp_shard * p.cp * p.tp


def param_row(name: str, param: torch.Tensor) -> dict:
    """One parameter's global and local (this rank's shard) shape and bytes.

    Bytes are those of the shard itself; where dim 0 does not divide by the FSDP degree (405B's
    vocab rows: 16032 per TP rank over 128) FSDP2 stores every shard padded to the largest one.
    """
    local = param.to_local() if isinstance(param, DTensor) else param
    placements = [str(pl) for pl in param.placements] if isinstance(param, DTensor) else []
    return {
        "name": name,
        "global_shape": list(param.shape),
        "local_shape": list(local.shape),
        "placements": placements,
        "dtype": str(param.dtype).removeprefix("torch."),
        "bytes": local.numel() * local.element_size(),
        "numel": local.numel(),
    }


def state_bytes(params: list[dict]) -> dict:
    """Parameter, gradient (same dtype as the shard) and AdamW (2 fp32 moments) bytes."""
    param_bytes = sum(p["bytes"] for p in params)
    optim_bytes = sum(2 * p["numel"] * 4 for p in params)
    total = 2 * param_bytes + optim_bytes
    return {
        "param_bytes": param_bytes,
        "grad_bytes": param_bytes,
        "optim_bytes": optim_bytes,
        "total_bytes": total,
    }


def dry_run(cfg: TrainConfig, dims: ParallelDims, rank: int) -> dict:
    """Report of one rank's parts, built in a fake process group that is torn down afterwards."""
    dims = dataclasses.replace(dims)  # a fresh mesh per process group
    args = get_model_config(cfg.model.name, **cfg.model.overrides())
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=dims.world_size)
    try:
        t0 = time.perf_counter()
        dims.build_mesh("cpu")
        t1 = time.perf_counter()
        ids, parts = build_parts(args, dims, cfg)
        t2 = time.perf_counter()
        stages = []
        for sid, part in zip(ids, parts, strict=True):
            params = [param_row(n, p) for n, p in part.named_parameters()]
            layers = sorted(int(i) for i in part.layers)
            gathered = sum(isinstance(m, GatheredKVAttention) for m in part.modules())  # apply_cp's
            stages.append(
                {
                    "stage": sid,
                    "layers": layers,
                    "kv_gather_blocks": gathered,
                    "params": params,
                    **state_bytes(params),
                }
            )
        coords = {d: dims.local_rank(d) for d in MESH_DIMS}
    finally:
        dist.destroy_process_group()
    all_params = [p for s in stages for p in s["params"]]
    return {
        "model": cfg.model.name,
        "model_params": args.num_params(),
        "rank": rank,
        "world_size": dims.world_size,
        "degrees": {
            "pp": dims.pp,
            "dp_replicate": dims.dp_replicate,
            "dp_shard": dims.dp_shard,
            "cp": dims.cp,
            "tp": dims.tp,
        },
        "fsdp_shards": dims.dp_shard * dims.cp if dims.fsdp_enabled else 1,
        "coords": coords,
        "stages": stages,
        **state_bytes(all_params),
        "seconds": {"mesh": t1 - t0, "build_parts": t2 - t1},
    }


def stage_ranks(dims: ParallelDims) -> list[int]:
    """One rank per pipeline rank, at dp = cp = tp = 0 (pp is the outermost mesh dim)."""
    return [pp * (dims.world_size // dims.pp) for pp in range(dims.pp)]


def console():
    """Rich console; wide when piped so parameter names are not cut (rich assumes 80 columns)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


def gib(n: int) -> str:
    return f"{n / 2**30:.3f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def print_rank(report: dict) -> None:
    """Per-parameter tables of every stage the rank holds, then its totals."""
    from rich.table import Table

    out = console()
    coords = ", ".join(f"{k}={v}" for k, v in report["coords"].items())
    out.print(f"[bold]{report['model']}[/] rank {report['rank']}/{report['world_size']} ({coords})")
    out.print(f"FSDP shards every parameter over {report['fsdp_shards']} ranks (dp_shard x cp)")
    for s in report["stages"]:
        layers = f"layers {s['layers'][0]}-{s['layers'][-1]}" if s["layers"] else "no layers"
        cp = f", {s['kv_gather_blocks']} gathering K/V over cp" if s["kv_gather_blocks"] else ""
        table = Table(title=f"stage {s['stage']}: {layers} ({len(s['layers'])} blocks{cp})")
        for col in ("parameter", "global shape", "local shape", "placements", "dtype", "local bytes"):
            table.add_column(col, justify="right" if col == "local bytes" else "left")
        for p in s["params"]:
            table.add_row(
                p["name"],
                str(tuple(p["global_shape"])),
                str(tuple(p["local_shape"])),
                ", ".join(p["placements"]),
                p["dtype"],
                f"{p['bytes']:,}",
            )
        out.print(table)
        out.print(f"stage {s['stage']} params: {s['param_bytes']:,} bytes ({gib(s['param_bytes'])})\n")
    share = report["total_bytes"] / GPU_BYTES
    out.print(
        f"rank {report['rank']}: params {gib(report['param_bytes'])} + grads {gib(report['grad_bytes'])} "
        f"+ AdamW {gib(report['optim_bytes'])} = {gib(report['total_bytes'])} "
        f"({share:.2%} of an 80 GiB GPU; activations and gathered FSDP units not counted)"
    )
    s = report["seconds"]
    out.print(f"mesh built in {s['mesh']:.3f} s, parts in {s['build_parts']:.3f} s")


def print_stages(reports: list[dict]) -> None:
    """One row per pipeline rank, to compare the first, middle and last stages."""
    from rich.table import Table

    table = Table(title=f"{reports[0]['model']}: one rank per pipeline rank (dp=0, cp=0, tp=0)")
    for col in ("pp", "rank", "stages", "blocks", "local params", "param bytes", "+grads+AdamW"):
        table.add_column(col, justify="right")
    for r in reports:
        blocks = [i for s in r["stages"] for i in s["layers"]]
        table.add_row(
            str(r["coords"]["pp"]),
            str(r["rank"]),
            ",".join(str(s["stage"]) for s in r["stages"]),
            f"{len(blocks)} ({min(blocks)}-{max(blocks)})" if blocks else "0",
            f"{sum(p['numel'] for s in r['stages'] for p in s['params']):,}",
            gib(r["param_bytes"]),
            gib(r["total_bytes"]),
        )
    console().print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pretrain.dryrun", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of configs/train.yaml (key=value)")
    parser.add_argument("--rank", type=int, default=0, help="global rank to build (default 0)")
    parser.add_argument("--world-size", type=int, help="default: the product of the parallel degrees")
    parser.add_argument("--all-pp-ranks", action="store_true", help="one rank per pipeline rank (dp=cp=tp=0)")
    parser.add_argument("--json", action="store_true", help="print the report(s) as JSON")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    try:
        cfg = compose_config(ns.overrides)
        world_size = ns.world_size or default_world_size(cfg)
        dims = check_layout(cfg, world_size)
        if not 0 <= ns.rank < world_size:
            raise LayoutError(f"--rank {ns.rank} is outside world size {world_size}")
    except ValueError as e:  # LayoutError, or check_layout's messages naming the parallel.* key
        print(f"error: {e}", file=sys.stderr)
        return 2
    ranks = stage_ranks(dims) if ns.all_pp_ranks else [ns.rank]
    reports = [dry_run(cfg, dims, r) for r in ranks]
    if ns.json:
        print(json.dumps(reports if ns.all_pp_ranks else reports[0], indent=1))
    elif ns.all_pp_ranks:
        print_stages(reports)
    else:
        print_rank(reports[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
