"""The single-node test Slurm works end to end: arrays, dependencies, srun, torchrun, requeue.

Every test name contains "slurm" (`pytest -k slurm`); they skip when the cluster cannot be
installed or started (see tests/slurm_cluster.py).
"""

# ruff: noqa: F811  (tests take the imported fixture as a parameter of the same name)
from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest
from slurm_cluster import slurm_cluster  # noqa: F401


def _poll(pred, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met after {timeout:.0f} s")
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slurm_array_with_concurrency_limit(slurm_cluster, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    script = f"""#!/bin/bash
echo "$(date +%s.%N)" > {out}/task_$SLURM_ARRAY_TASK_ID.start
sleep 1
echo "$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT" > {out}/task_$SLURM_ARRAY_TASK_ID
echo "$(date +%s.%N)" > {out}/task_$SLURM_ARRAY_TASK_ID.end
"""
    job = slurm_cluster.sbatch("--array=0-2%2", "-o", f"{tmp_path}/log_%A_%a.out", script=script)
    assert slurm_cluster.wait(job, timeout=120) == "COMPLETED"
    states = slurm_cluster.states(job)
    assert states == {f"{job}_{i}": "COMPLETED" for i in range(3)}
    spans = []
    for i in range(3):
        assert (out / f"task_{i}").read_text().split() == [str(job), str(i), "3"]
        spans.append(tuple(float((out / f"task_{i}.{e}").read_text()) for e in ("start", "end")))
    # %2: the three tasks never all run at once.
    latest_start = max(s for s, _ in spans)
    assert sum(s <= latest_start < e for s, e in spans) <= 2, spans


def test_slurm_afterok_chain(slurm_cluster, tmp_path):
    first = slurm_cluster.sbatch(
        "-o", str(tmp_path / "first.out"), "--wrap", f"sleep 1; echo 'from first' > {tmp_path}/data.txt"
    )
    second = slurm_cluster.sbatch(
        f"--dependency=afterok:{first}",
        "-o",
        str(tmp_path / "second.out"),
        "--wrap",
        f"cat {tmp_path}/data.txt; echo 'second done' >> {tmp_path}/data.txt",
    )
    assert slurm_cluster.info(second)["JobState"] == "PENDING"
    assert slurm_cluster.wait(second, timeout=120) == "COMPLETED"
    assert slurm_cluster.wait(first) == "COMPLETED"
    assert (tmp_path / "second.out").read_text().strip() == "from first"
    assert (tmp_path / "data.txt").read_text().splitlines() == ["from first", "second done"]


def test_slurm_afterok_on_failed_job_never_runs(slurm_cluster, tmp_path):
    failing = slurm_cluster.sbatch("-o", str(tmp_path / "fail.out"), "--wrap", "exit 3")
    never = slurm_cluster.sbatch(
        f"--dependency=afterok:{failing}", "-o", str(tmp_path / "never.out"), "--wrap", "touch ran"
    )
    assert slurm_cluster.wait(failing, timeout=120) == "FAILED"
    assert slurm_cluster.info(failing)["ExitCode"] == "3:0"
    rec = slurm_cluster.wait_for(never, lambda r: r["Reason"] == "DependencyNeverSatisfied")
    assert rec["JobState"] == "PENDING"
    slurm_cluster.scancel(str(never))
    assert slurm_cluster.wait(never, timeout=60) == "CANCELLED"
    assert not (tmp_path / "never.out").exists()


@pytest.mark.distributed
def test_slurm_srun_two_tasks(slurm_cluster, tmp_path):
    script = f"""#!/bin/bash
srun -n2 bash -c 'echo "$SLURM_PROCID $SLURM_NTASKS $SLURM_STEP_ID" > {tmp_path}/rank_$SLURM_PROCID'
"""
    job = slurm_cluster.sbatch("-n2", "-o", str(tmp_path / "srun.out"), script=script)
    assert slurm_cluster.wait(job, timeout=120) == "COMPLETED", (tmp_path / "srun.out").read_text()
    for rank in range(2):
        assert (tmp_path / f"rank_{rank}").read_text().split() == [str(rank), "2", "0"]


ALL_REDUCE = """
import os, sys
import torch
import torch.distributed as dist

torch.set_num_threads(1)
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
with open(os.path.join(sys.argv[1], f"rank{rank}.txt"), "w") as f:
    f.write(f"{world} {t.item():g} {os.environ['SLURM_JOB_ID']}")
dist.barrier()
dist.destroy_process_group()
"""


def _torchrun() -> str:
    exe = Path(sys.executable).parent / "torchrun"
    return str(exe) if exe.exists() else f"{sys.executable} -m torch.distributed.run"


@pytest.mark.distributed
def test_slurm_srun_torchrun_c10d(slurm_cluster, tmp_path):
    (tmp_path / "allreduce.py").write_text(ALL_REDUCE)
    script = f"""#!/bin/bash
export OMP_NUM_THREADS=1 GLOO_SOCKET_IFNAME=lo
srun {_torchrun()} --nnodes 1 --nproc-per-node 2 --rdzv-backend c10d \\
    --rdzv-endpoint localhost:{_free_port()} {tmp_path}/allreduce.py {tmp_path}
"""
    job = slurm_cluster.sbatch("-n1", "-c2", "-o", str(tmp_path / "torchrun.out"), script=script)
    state = slurm_cluster.wait(job, timeout=240)
    assert state == "COMPLETED", (tmp_path / "torchrun.out").read_text()
    for rank in range(2):
        assert (tmp_path / f"rank{rank}.txt").read_text().split() == ["2", "3", str(job)]


def test_slurm_scontrol_requeue_reruns_job(slurm_cluster, tmp_path):
    marker = tmp_path / "marker"
    script = f"""#!/bin/bash
echo "start restart=${{SLURM_RESTART_COUNT:-0}}"
if [ ! -f {marker} ]; then touch {marker}; sleep 300; fi
echo done
"""
    out = tmp_path / "requeue.out"
    job = slurm_cluster.sbatch("--requeue", "--open-mode=append", "-o", str(out), script=script)
    _poll(marker.exists, timeout=60, what="first run")
    assert slurm_cluster.info(job)["JobState"] == "RUNNING"
    slurm_cluster.scontrol("requeue", str(job))
    assert slurm_cluster.wait(job, timeout=120) == "COMPLETED"
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("slurmstepd")]
    assert lines == ["start restart=0", "start restart=1", "done"]
    assert slurm_cluster.info(job)["Restarts"] == "1"
