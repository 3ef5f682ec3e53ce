"""Benchmarks that only run on hardware or at sizes we do not have in CI still have to run: their
smoke modes (which print their table and append nothing to bench/RESULTS.md)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO


def run_smoke(script: str) -> str:
    """stdout of `bench/<script> --smoke`, which must exit 0."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, f"bench/{script}", "--smoke"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_gpu_mfu_bench_smoke_runs_on_cpu():
    out = run_smoke("bench_gpu_mfu.py")
    assert "| sdpa |" in out and "tokens/s" in out


def test_bench_kmeans_smoke_runs():
    out = run_smoke("bench_kmeans.py")
    assert "| torch (kmeans.train) |" in out and "| inertia vs sklearn |" in out


def test_bench_semantic_dedup_smoke_runs():
    out = run_smoke("bench_semantic_dedup.py")
    assert "| embed | 1 |" in out and "| removed by andes | removed by semhash |" in out
    assert "| 2,000 | cluster |" in out


def test_bench_eval_smoke_runs():
    out = run_smoke("bench_eval.py")
    assert "| hellaswag | 8 |" in out and "speedup" in out


def test_bench_annotate_smoke_runs():
    out = run_smoke("bench_annotate.py")
    assert "| random Llama |" in out and "Projected cost of 500,000 labels" in out


def test_bench_cp_smoke_runs():
    out = run_smoke("bench_cp.py")
    assert "| cp1 | 1 |" in out and "| cp2 | 2 |" in out


def test_bench_dedup_cc_smoke_runs():
    out = run_smoke("bench_dedup_cc.py")
    assert "byte-identical for every K: True" in out and "Labels identical for every K: True" in out
