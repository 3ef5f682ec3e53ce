"""Checkpoints and failures: kill -9 and restart, resume in another layout, preemption signals, NaN
steps, hangs, and broken checkpoint directories. Every restart is the same command, as a job
scheduler would issue it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, compose, tiny_overrides

from pretrain.checkpoint import latest_step, step_dir
from pretrain.fault import EXIT_HANG, EXIT_NONFINITE, EXIT_PREEMPTED, TrainingStopped
from pretrain.job_config import ConfigError
from pretrain.train import train

STEPS = 12


def overrides(data: Path, run: Path, *extra: str) -> list[str]:
    return tiny_overrides(
        data,
        run,
        f"training.steps={STEPS}",
        "training.micro_batch_size=2",
        "metrics.log_interval=1",
        "checkpoint.enabled=true",
        "checkpoint.interval=2",
        *extra,
    )


def losses_by_step(run: Path) -> dict[int, float]:
    """The last logged loss of every step (a step logged twice across a restart keeps the latest)."""
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[r["step"]] = r["loss"]
    return out


def torchrun(nproc: int, args: list[str], tmp: Path, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd += ["-m", "pretrain.train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp)}
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kw,
    )


def kill9_tree(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun and every process under it at once, as a node failure would.

    torchrun starts its workers in sessions of their own, so killing its process group alone
    would leave them running."""
    pids, frontier = [proc.pid], [proc.pid]
    while frontier:
        out = subprocess.run(["pgrep", "-P", ",".join(map(str, frontier))], capture_output=True, text=True)
        frontier = [int(p) for p in out.stdout.split()]
        pids += frontier
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    for pid in pids:  # reap-independent check that nothing survived
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run / "metrics.jsonl").exists() and max(losses_by_step(run), default=0) >= step:
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"run ended (rc {proc.returncode}) before step {step}:\n{proc.stdout.read()[-3000:]}"
            )
        time.sleep(0.05)
    raise TimeoutError(f"step {step} not reached")


@pytest.fixture(scope="module")
def uninterrupted(packed_data, tmp_path_factory) -> dict[int, float]:
    run = tmp_path_factory.mktemp("uninterrupted")
    result = train(compose(overrides(packed_data, run)))
    assert (run / "checkpoints" / "latest").read_text().strip() == f"step-{STEPS}"
    return dict(enumerate(result.losses, start=1))


@pytest.mark.distributed
@pytest.mark.parametrize(
    "kill_after", [7, pytest.param(3, marks=pytest.mark.slow), pytest.param(10, marks=pytest.mark.slow)]
)
def test_kill9_then_same_command_equals_uninterrupted_run(packed_data, tmp_path, uninterrupted, kill_after):
    """The issue's acceptance: 2 ranks (FSDP), SIGKILL after step k, the same command again."""
    run = tmp_path / "run"
    args = overrides(packed_data, run, "parallel.dp_shard=2")
    proc = torchrun(2, args, tmp_path)
    wait_for_step(run, kill_after, proc)
    kill9_tree(proc)
    saved = latest_step(run / "checkpoints")
    assert saved is not None and saved <= kill_after + 1
    proc = torchrun(2, args, tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert f"resuming after step {saved}" in out
    got = losses_by_step(run)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step, loss in uninterrupted.items():
        assert got[step] == pytest.approx(loss, rel=1e-5), step
    assert json.loads((run / "exit.json").read_text())["code"] == 0


@pytest.mark.distributed
@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((2, ("parallel.dp_shard=2",)), (1, ())),
        ((4, ("parallel.dp_shard=2", "parallel.tp=2")), (2, ("parallel.pp=2", "parallel.dp_shard=1"))),
    ],
    ids=["dp2-to-1", "dp2xtp2-to-pp2"],
)
def test_resume_in_another_layout_continues_the_same_run(packed_data, tmp_path, uninterrupted, first, second):
    run = tmp_path / "run"
    (n1, extra1), (n2, extra2) = first, second
    proc = torchrun(n1, overrides(packed_data, run, "training.steps=12", *extra1), tmp_path)
    wait_for_step(run, 6, proc)
    kill9_tree(proc)
    saved = latest_step(run / "checkpoints")
    if n2 == 1:
        train(compose(overrides(packed_data, run, *extra2)))
    else:
        proc = torchrun(n2, overrides(packed_data, run, *extra2), tmp_path)
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
    got = losses_by_step(run)
    for step in range(saved + 1, STEPS + 1):
        assert got[step] == pytest.approx(uninterrupted[step], rel=1e-4), step


def test_incomplete_latest_falls_back_and_corrupt_checkpoint_names_itself(
    packed_data, tmp_path, uninterrupted
):
    run = tmp_path / "run"
    train(compose(overrides(packed_data, run, "training.steps=6", "lr.warmup_steps=2")))
    root = run / "checkpoints"
    # A save killed after its data but before DCP's metadata: `latest` must not move to it.
    (step_dir(root, 6) / ".metadata").unlink()
    assert latest_step(root) == 4
    # A corrupt data file in the newest complete checkpoint: a clear error naming it.
    for f in step_dir(root, 4).glob("*.distcp"):
        f.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match=r"step-4 could not be loaded.*other complete steps: \[2\]"):
        train(compose(overrides(packed_data, run, "training.steps=6", "lr.warmup_steps=2")))
    with pytest.raises(ConfigError, match="load_step=5.*is not a complete checkpoint"):
        train(compose(overrides(packed_data, run, "checkpoint.load_step=5")))


def test_nonfinite_step_stops_or_is_skipped(packed_data, tmp_path):
    run = tmp_path / "stop"
    with pytest.raises(TrainingStopped) as stop:
        train(compose(overrides(packed_data, run, "debug.nan_at_step=5")))
    assert stop.value.code == EXIT_NONFINITE and "grad_norm=nan" in stop.value.reason
    assert latest_step(run / "checkpoints") == 4  # nothing of step 5 was saved
    assert json.loads((run / "exit.json").read_text())["code"] == EXIT_NONFINITE

    run = tmp_path / "skip"
    result = train(
        compose(overrides(packed_data, run, "debug.nan_at_step=5", "training.max_nonfinite_skips=1"))
    )
    assert len(result.losses) == STEPS
    records = {
        json.loads(line)["step"]: json.loads(line)
        for line in (run / "metrics.jsonl").read_text().splitlines()
    }
    assert records[5]["skipped_steps"] == 1 and records[5]["grad_norm"] is None  # NaN is logged as null


@pytest.mark.distributed
def test_sigusr1_saves_and_exits_for_requeue_then_resumes(packed_data, tmp_path, uninterrupted):
    run = tmp_path / "run"
    args = overrides(packed_data, run, "parallel.dp_shard=2", "checkpoint.interval=100")
    proc = torchrun(2, args, tmp_path)
    wait_for_step(run, 3, proc)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    os.kill(int(workers[-1]), signal.SIGUSR1)  # one rank only: the ranks agree before stopping
    out, _ = proc.communicate(timeout=300)
    record = json.loads((run / "exit.json").read_text())
    assert record["code"] == EXIT_PREEMPTED and "SIGUSR1" in record["reason"], out[-3000:]
    assert latest_step(run / "checkpoints") == record["step"]
    proc = torchrun(2, args, tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    got = losses_by_step(run)
    assert got[STEPS] == pytest.approx(uninterrupted[STEPS], rel=1e-5)


@pytest.mark.distributed
def test_hang_in_one_rank_fires_the_watchdog_on_all(packed_data, tmp_path):
    run = tmp_path / "run"
    args = overrides(
        packed_data,
        run,
        "parallel.dp_shard=2",
        "debug.hang_at_step=4",
        "debug.hang_rank=1",
        "training.step_timeout_s=5",
        "training.first_step_timeout_s=120",
    )
    t0 = time.monotonic()
    proc = torchrun(2, args, tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 120
    # Both ranks' watchdogs fire at about the same deadline; whichever exits first breaks the other's
    # collective, which may then end with a gloo error instead of its own watchdog (still non-zero).
    assert out.count("watchdog: no step finished") >= 1, out[-3000:]
    assert "most recent call first" in out  # the stack dump
    assert f"(exitcode: {EXIT_HANG})" in out, out[-3000:]
