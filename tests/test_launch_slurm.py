"""Training through a real Slurm: launch/submit.py -> sbatch -> srun torchrun (2 ranks, c10d), then
preemption with `scancel --signal=USR1`: the trainer checkpoints and exits 3, the job requeues itself
and resumes to the same final loss as an uninterrupted run."""

# ruff: noqa: F811  (pytest fixtures imported by name)

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from conftest import REPO, compose, tiny_overrides
from slurm_cluster import slurm_cluster  # noqa: F401

from pretrain.train import train

STEPS = 16


def _overrides(data, run) -> list[str]:
    return tiny_overrides(
        data, run, f"training.steps={STEPS}", "training.micro_batch_size=2", "metrics.log_interval=1",
        "checkpoint.interval=100",
    )  # fmt: skip


def _logged_steps(run) -> dict[int, float]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return {}
    return {json.loads(x)["step"]: json.loads(x)["loss"] for x in path.read_text().splitlines()}


@pytest.mark.distributed
def test_slurm_training_preempted_requeues_and_resumes(slurm_cluster, packed_data, tmp_path):
    reference = train(compose(_overrides(packed_data, tmp_path / "reference")))
    run = tmp_path / "run"
    cmd = [sys.executable, "launch/submit.py", *_overrides(packed_data, run)]
    cmd += ["parallel.dp_shard=2", "slurm.gpus_per_node=0", "slurm.nproc_per_node=2", "slurm.time=00:10:00"]
    env = {**slurm_cluster.env, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    job = int(proc.stdout.split("submitted job ")[1].split(";")[0])

    deadline = time.monotonic() + 300
    while max(_logged_steps(run), default=0) < 3:
        assert time.monotonic() < deadline, slurm_cluster.squeue() + slurm_cluster.log_tail()
        time.sleep(0.2)
    slurm_cluster.scancel("--signal=USR1", str(job))

    deadline = time.monotonic() + 400
    while True:  # the job leaves RUNNING once for the requeue, so wait for the trainer's own record
        exit_record = run / "exit.json"
        if exit_record.exists() and json.loads(exit_record.read_text())["code"] == 0:
            break
        assert time.monotonic() < deadline, (run / f"slurm-{job}.out").read_text()[-4000:]
        time.sleep(0.5)
    assert slurm_cluster.wait(job, timeout=120) == "COMPLETED"

    log = (run / f"slurm-{job}.out").read_text()
    assert "requeueing job" in log and "restart 1" in log, log[-4000:]
    assert "resuming after step" in log
    assert int(slurm_cluster.info(job).get("Restarts", "0")) >= 1
    got = _logged_steps(run)
    assert sorted(got) == list(range(1, STEPS + 1))
    assert got[STEPS] == pytest.approx(reference.losses[-1], rel=1e-5)
    for step, loss in got.items():
        assert loss == pytest.approx(reference.losses[step - 1], rel=1e-5), step
