"""launch/submit.py: the rendered job script and the checks made before anything is submitted."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "launch"))

from submit import SubmitError, submit  # noqa: E402

LAYOUT = [
    "model=llama3_8b",
    "data.path=/shared/data",
    "parallel.tp=8",
    "parallel.dp_shard=4",
    "slurm.nodes=4",
    "training.micro_batch_size=1",
]


def test_dry_run_prints_srun_torchrun_with_c10d_rendezvous():
    proc = subprocess.run(
        [sys.executable, "launch/submit.py", "--dry-run", "model=llama3_debug", "data.path=/shared/d",
         "slurm.nodes=2", "slurm.gpus_per_node=4", "run.dir=/shared/runs/x", "slurm.partition=gpu",
         "training.micro_batch_size=1"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    script = proc.stdout
    for line in (
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --partition=gpu",
        "#SBATCH --signal=USR1@120",
        "#SBATCH --requeue",
        "#SBATCH --output=/shared/runs/x/slurm-%j.out",
        "srun --kill-on-bad-exit=1",
        '--nnodes "$SLURM_NNODES" --nproc-per-node 4',
        '--rdzv-backend c10d --rdzv-endpoint "$head:29500"',
        "run.dir=/shared/runs/x checkpoint.enabled=true",
        'scontrol requeue "$SLURM_JOB_ID"',
    ):
        assert line in script, line
    assert "{{" not in script
    bash = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert bash.returncode == 0, bash.stderr


def test_relative_paths_become_absolute_and_each_submission_gets_a_run_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script, job = submit(
        ["model=llama3_debug", "data.path=data/x", "slurm.gpus_per_node=2", "training.micro_batch_size=1"],
        dry_run=True,
    )
    assert job is None
    assert f"data.path={tmp_path}/data/x" in script
    assert f"run.dir={tmp_path}/runs/andes-" in script


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([*LAYOUT, "slurm.nodes=2"], "= 32 but world_size=16 .world size 16 = slurm.nodes x processes"),
        ([*LAYOUT[:-1], "parallel.dp_shard=-1", "slurm.nodes=1", "parallel.pp=16"], "world_size=8"),
        ([*LAYOUT, "parallel.tp=3", "parallel.dp_shard=-1", "slurm.gpus_per_node=3"], "parallel.tp=3"),
        ([*LAYOUT, "run.dir=/tmp/run"], "node-local"),
        ([*LAYOUT, "slurm.nproc_per_node=16"], "exceeds slurm.gpus_per_node=8"),
        (["model=llama3_8b"], "data.path=DIR is required"),
        ([*LAYOUT, "slurm.nodez=1"], "unknown config key slurm.nodez"),
    ],
)
def test_bad_requests_fail_before_submitting(overrides, message):
    with pytest.raises(SubmitError, match=message.replace("(", r"\(")):
        submit(overrides, dry_run=True)


def test_no_sbatch_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SubmitError, match="sbatch not found"):
        submit([*LAYOUT, "run.dir=/shared/r"], dry_run=False)


def test_local_launcher_passes_overrides_through(packed_data, tmp_path):
    from conftest import tiny_overrides

    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env['PATH']}"
    proc = subprocess.run(
        ["launch/local.sh", "2", *tiny_overrides(packed_data, run, "training.steps=2")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
