"""Trainer start-up checks: every config, layout, data and resume error is one line and exit 2,
before any process group or model exists; resumes name what changed; the run dir tells the truth."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist
from conftest import REPO, compose, tiny_overrides

from pretrain import train as train_module
from pretrain.fault import StepHooks
from pretrain.job_config import ConfigError
from pretrain.lr import lr_multiplier
from pretrain.train import main, train


def _main_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+training.stepz=5", "unknown config key training.stepz (did you mean training.steps?)"),
        ("training.stepz=5", "unknown config key training.stepz"),
        ("training.steps=-3", "training.steps=-3 must be >= 1"),
        ("optim.lr=nan", "optim.lr=nan must be a finite number"),
        ("lr=nan", "the learning rate itself is optim.lr"),
        ("optim.betas=[0.9,1.5]", "optim.betas=[0.9, 1.5] must be < 1"),
        ("lr.min_lr_ratio=2", "lr.min_lr_ratio=2.0 must be <= 1"),
        ("parallel.activation_checkpoint=ful", "expected one of none, full"),
        ("checkpoint.keep_last=-1", "checkpoint.keep_last=-1 must be >= 0"),
        ("slurm.rdzv_port=70000", "slurm.rdzv_port=70000 must be <= 65535"),
        ("eval.tasks=[arc_easy,hellaswg]", "eval.tasks: unknown task 'hellaswg'; did you mean hellaswag"),
        ("eval.tasks=[piqa:rc_9shot]", "eval.tasks: task 'piqa' has no variant 'rc_9shot'"),
        ("eval.limit=0", "eval.limit=0 must be >= 1"),
        ("eval.tasks=[piqa]", "not the tokenizer the data was packed with ('synthetic', tiktoken"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(packed_data, tmp_path, capsys, monkeypatch, override, message):
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **k: pytest.fail("process group created"))
    err = _main_error(capsys, tiny_overrides(packed_data, tmp_path / "run", override))
    assert err.startswith("config error: ") and message in err
    assert not (tmp_path / "run").exists()  # nothing written for a config that never ran


def test_missing_data_path_and_data_errors_are_one_line(tmp_path, capsys):
    assert "data.path is required" in _main_error(capsys, ["model=llama3_debug"])
    err = _main_error(capsys, [f"data.path={tmp_path / 'nowhere'}"])
    assert str(tmp_path / "nowhere") in err and "no manifest" in err


def test_bf16_pipeline_without_fsdp_fails_before_the_model(packed_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(train_module, "init_model", lambda *a, **k: pytest.fail("model built"))
    extra = ("parallel.pp=2", "parallel.dp_shard=1", "training.dtype=bfloat16")
    with pytest.raises(ConfigError, match="training.dtype=bfloat16 with a pipeline"):
        train(compose(tiny_overrides(packed_data, tmp_path, *extra)))
    assert not dist.is_initialized()


def test_validation_set_of_another_tokenizer_is_refused(packed_data, tmp_path):
    val = tmp_path / "val"
    shutil.copytree(packed_data / "val", val)
    manifest = json.loads((val / "manifest.json").read_text())
    manifest["tokenizer"].update(name="other", sha256="f" * 64, n_vocab=100000)
    (val / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=f"validation.path={val} was packed with tokenizer 'other'"):
        train(compose(tiny_overrides(packed_data, tmp_path / "run", f"validation.path={val}")))


def _steps(run) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


CKPT = ("checkpoint.enabled=true", "checkpoint.interval=3", "checkpoint.async_mode=disabled")


def test_resume_refuses_changed_schedule_unless_overridden(packed_data, tmp_path, capsys):
    run = tmp_path / "run"
    base = tiny_overrides(packed_data, run, *CKPT, "training.steps=6", "metrics.log_interval=1")
    train(compose(base))
    # Changing the peak LR and resuming step 3: refused, naming the key and both values.
    with pytest.raises(ConfigError, match="training.seed 0 -> 1: the saved data position"):
        train(compose([*base, "checkpoint.load_step=3", "training.seed=1"]))
    changed = [*base, "checkpoint.load_step=3", "optim.lr=1e-3", "training.max_norm=0.5"]
    with pytest.raises(ConfigError, match=r"optim.lr 0.003 -> 0.001.*override_opt_schedule=true"):
        train(compose(changed))
    # Applied from the resumed step on when asked; the other changed key is reported.
    capsys.readouterr()
    train(compose([*changed, "checkpoint.override_opt_schedule=true"]))
    out = capsys.readouterr().out
    assert "resume: changed since step 3: optim.lr 0.003 -> 0.001, training.max_norm 1.0 -> 0.5" in out
    records = {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    cfg = compose(base).lr
    assert records[4]["lr"] == pytest.approx(1e-3 * lr_multiplier(3, cfg, 6))
    assert records[3]["lr"] == pytest.approx(3e-3 * lr_multiplier(2, cfg, 6))
    assert _steps(run) == [1, 2, 3, 4, 5, 6]  # the first run's steps 4-6 were dropped, not repeated


def test_metrics_hold_every_step_once_after_resume(packed_data, tmp_path):
    run = tmp_path / "run"
    base = tiny_overrides(packed_data, run, *CKPT, "training.steps=6", "metrics.log_interval=1")
    first = train(compose(base))
    again = train(compose([*base, "checkpoint.load_step=3"]))  # as after a kill -9 past step 3
    assert _steps(run) == [1, 2, 3, 4, 5, 6]
    assert again.losses == pytest.approx(first.losses[3:], rel=1e-6)


def test_exit_record_for_crashes_and_config_errors(packed_data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(compose(tiny_overrides(packed_data, run, "training.steps=2")))
    assert json.loads((run / "exit.json").read_text())["reason"] == "finished"

    def crash(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(train_module, "optimizer_step", crash)
    with pytest.raises(RuntimeError):
        train(compose(tiny_overrides(packed_data, run, "training.steps=2")))
    record = json.loads((run / "exit.json").read_text())
    assert record["code"] == 1 and "disk on fire" in record["reason"] and record["step"] == 1
    with pytest.raises(ConfigError):
        train(compose(tiny_overrides(packed_data, run, "data.seq_len=64")))
    record = json.loads((run / "exit.json").read_text())
    assert record["code"] == 2 and "seq_len=32" in record["reason"]


@pytest.mark.distributed
def test_torchrun_config_error_printed_once_exit_2(packed_data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone"]
    cmd += ["-m", "pretrain.train", *tiny_overrides(packed_data, tmp_path / "run", "+training.stepz=5")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.count("config error: unknown config key training.stepz") == 1, proc.stderr
    assert "exitcode  : 2" in proc.stderr


def test_check_only_runs_the_checks_for_world_size(packed_data, tmp_path, capsys, monkeypatch):
    args = tiny_overrides(packed_data, tmp_path / "run")
    assert main(["--check", *args]) == 0
    assert "config ok: 64 training sequences" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert "world_size=3" in _main_error(capsys, ["--check", *args, "parallel.tp=2"])


def test_local_launcher_reports_a_bad_config_before_torchrun(packed_data, tmp_path):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    args = tiny_overrides(packed_data, tmp_path / "run", "training.steps=-3")
    proc = subprocess.run(
        ["bash", "launch/local.sh", "2", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "config error: training.steps=-3 must be >= 1"


AGREE = [
    ("parallel.pp=2", "parallel.dp_shard=1", "training.dtype=bfloat16"),  # the estimator once accepted it
    ("parallel.tp=3",),
    ("training.micro_batch_size=3",),
    ("parallel.pp=4", "parallel.dp_shard=1"),  # 2 blocks cannot fill 4 stages
]


@pytest.mark.parametrize("extra", AGREE)
def test_trainer_estimator_dryrun_and_submit_reject_alike(packed_data, tmp_path, capsys, monkeypatch, extra):
    """One layout check (pretrain/preflight.py) answers for all four tools, with the same message."""
    from pretrain import dryrun, estimate

    sys.path.insert(0, str(REPO / "launch"))
    import submit

    world = 2 if "parallel.pp=2" in extra else 4
    args = [*tiny_overrides(packed_data, tmp_path / "run", *extra), "slurm.gpus_per_node=0"]
    monkeypatch.setenv("WORLD_SIZE", str(world))
    with pytest.raises(ConfigError) as trainer:
        train(compose(args))
    message = str(trainer.value)
    assert estimate.main([*args, f"--world-size={world}"]) == 2
    assert message in capsys.readouterr().err
    assert dryrun.main([*args, f"--world-size={world}"]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(submit.SubmitError, match="world size") as refused:
        submit.submit([*args, f"slurm.nodes={world}"], dry_run=True)
    assert message in str(refused.value)


def test_the_loop_reaches_faults_only_through_step_hooks(packed_data, tmp_path, monkeypatch):
    calls = []

    class Recorder(StepHooks):
        def before_step(self, step):
            calls.append(("before", step))

        def after_backward(self, step, params):
            calls.append(("after", step, all(p.grad is not None for p in params)))

    monkeypatch.setattr(train_module, "step_hooks", lambda debug, rank: Recorder())
    train(compose(tiny_overrides(packed_data, tmp_path / "run", "training.steps=2")))
    assert calls == [("before", 1), ("after", 1, True), ("before", 2), ("after", 2, True)]
