"""Benchmarks that only run on hardware we do not have in CI still have to run: their smoke modes."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO


def test_gpu_mfu_bench_smoke_runs_on_cpu():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "bench/bench_gpu_mfu.py", "--smoke"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| sdpa |" in proc.stdout and "tokens/s" in proc.stdout
