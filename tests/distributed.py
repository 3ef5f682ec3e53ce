"""One spawn helper for every multi-process test (after OLMo-core's `run_distributed_test`).

`run_distributed(fn, world, *args)` starts `world` processes on gloo, calls `fn(rank, world, *args)`
in each and returns their results in rank order. A worker that fails makes the call raise with
its traceback instead of leaving the test waiting; workers meet at a barrier before tearing gloo
down (a rank leaving early made its peers abort), and after it, on files, so that no process exits
while a peer is still tearing down (one CI run saw a rank abort, "terminate called without an
active exception", at that moment).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank: int, world: int, store: str, queue, fn: Callable, args: tuple) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        queue.put((rank, fn(rank, world, *args)))
        dist.barrier()
    finally:
        dist.destroy_process_group()
        _leave_together(store, rank, world)


def _leave_together(store: str, rank: int, world: int, timeout: float = 60.0) -> None:
    """Wait, without gloo, until every rank has torn its process group down (or `timeout` passed)."""
    Path(f"{store}.left-{rank}").touch()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(Path(f"{store}.left-{r}").exists() for r in range(world)):
            return
        time.sleep(0.01)


def run_distributed(fn: Callable, world: int, *args, timeout: float = 900) -> list:
    """Results of `fn(rank, world, *args)` from every rank (they must pickle by value: numpy, floats)."""
    with tempfile.TemporaryDirectory() as tmp:
        queue = mp.get_context("spawn").SimpleQueue()
        procs = mp.start_processes(
            _entry,
            args=(world, os.path.join(tmp, "store"), queue, fn, args),
            nprocs=world,
            start_method="spawn",
            join=False,
        )
        results: dict[int, object] = {}
        waited = 0.0
        # Read results while the workers run (a worker blocks on the pipe until it is read); a failed
        # worker makes join() raise with its traceback.
        while len(results) < world:
            while not queue.empty():
                rank, value = queue.get()
                results[rank] = value
            if len(results) == world:
                break
            if procs.join(timeout=1) and queue.empty():
                raise AssertionError(f"workers exited with results from ranks {sorted(results)} only")
            waited += 1
            if waited > timeout:
                for p in procs.processes:
                    p.kill()
                raise TimeoutError(f"distributed test still running after {timeout:.0f} s")
        while not procs.join(timeout=60):
            pass
        return [results[r] for r in range(world)]
