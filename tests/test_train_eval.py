"""Evaluation in the training loop (eval.*): scores logged at their steps, the training bit for bit
unchanged (one process and FSDP dp2), no duplicate rows after kill -9 and resume, RNG untouched."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import REPO, compose, tiny_overrides

from pretrain.checkpoint import latest_step
from pretrain.eval import in_loop
from pretrain.eval.__main__ import main as eval_main
from pretrain.train import train

TASKS = ("arc_easy", "piqa:mc_5shot")
EVAL = (f"eval.tasks=[{','.join(TASKS)}]", "eval.interval=2", "eval.limit=4")
METRICS = ("acc", "acc_per_char", "acc_per_token", "bpb", "n")


@pytest.fixture(scope="module")
def text_data(tmp_path_factory) -> tuple[Path, Path]:
    """(packed dir, tokenizer): English text packed with a byte-level tiktoken file (512 ids)."""
    from data_pipeline.pack import pack_chunks
    from data_pipeline.tokenizer import load_tokenizer

    root = tmp_path_factory.mktemp("text")
    ranks = root / "bytes.tiktoken"
    ranks.write_text("".join(f"{base64.b64encode(bytes([i])).decode()} {i}\n" for i in range(256)))
    texts = [f"Question: which number comes after {i}? Answer: {i + 1}, the next one." for i in range(300)]
    (root / "docs").mkdir()
    pq.write_table(pa.table({"id": [str(i) for i in range(300)], "text": texts}), root / "docs" / "a.parquet")
    pack_chunks([root / "docs"], root / "packed" / "train", load_tokenizer(ranks), seq_len=32)
    return root / "packed", ranks


def overrides(text_data, run: Path, *extra: str) -> list[str]:
    packed, ranks = text_data
    return tiny_overrides(
        packed, run, "model.vocab_size=512", f"data.tokenizer={ranks}", "training.steps=6", *extra
    )


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def eval_rows(run: Path) -> dict[int, dict]:
    """{step: its eval/ keys}; a step evaluated twice would fail here."""
    out: dict[int, dict] = {}
    for r in records(run):
        keys = {k: v for k, v in r.items() if k.startswith("eval/")}
        if keys:
            assert r["step"] not in out, f"step {r['step']} evaluated twice"
            out[r["step"]] = keys
    return out


def tb_steps(run: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


def test_scores_are_logged_and_training_is_unchanged(text_data, tmp_path):
    ckpt = ("checkpoint.enabled=true", "checkpoint.interval=6", "checkpoint.async_mode=disabled")
    run = tmp_path / "eval"
    with_eval = train(compose(overrides(text_data, run, *ckpt, *EVAL, "metrics.tensorboard=true")))
    plain = train(compose(overrides(text_data, tmp_path / "plain", *ckpt)))
    assert with_eval.losses == plain.losses  # bit for bit: loader, optimizer, RNG and modes untouched
    assert [r["step"] for r in records(run)] == [1, 2, 4, 5, 6]  # log_interval=5, plus every eval
    rows = eval_rows(run)
    assert sorted(rows) == [2, 4, 6] and with_eval.evals == rows
    expected = {f"eval/{t}/{m}" for t in TASKS for m in METRICS} | {"eval/seconds"}
    assert set(rows[6]) == expected and rows[6]["eval/arc_easy/n"] == 4
    assert rows[6]["eval/arc_easy/bpb"] < rows[2]["eval/arc_easy/bpb"]  # scored on the trained weights
    assert tb_steps(run, "eval/piqa:mc_5shot/acc_per_char") == [2, 4, 6]
    # The last evaluation scored the final weights, the same as the CLI on the final checkpoint
    # (and those weights equal the run without evaluation's).
    for name in ("eval", "plain"):
        out = tmp_path / f"{name}.json"
        flags = ["--tasks", ",".join(TASKS), "--limit", "4", "--no-progress", "--out", str(out)]
        assert eval_main(["--checkpoint", str(tmp_path / name), *flags]) == 0
        for task, metrics in json.loads(out.read_text())["tasks"].items():
            for m in METRICS:
                assert metrics[m] == pytest.approx(rows[6][f"eval/{task}/{m}"], rel=1e-6), (name, task, m)


def test_rng_modes_and_gradients_untouched(text_data, monkeypatch):
    """Evaluation that draws random numbers still leaves the generators, modes and .grad as found."""
    from data_pipeline.tokenizer import load_tokenizer
    from parallel.dims import ParallelDims
    from pretrain.job_config import typed_config
    from pretrain.model import Transformer
    from pretrain.preflight import model_args

    cfg = typed_config(compose(overrides(text_data, Path("unused"), *EVAL)))
    model = Transformer(model_args(cfg)).train()
    model.init_weights()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    real = in_loop.evaluate

    def drawing(*args, **kwargs):
        torch.rand(3)
        return real(*args, **kwargs)

    monkeypatch.setattr(in_loop, "evaluate", drawing)
    rng = torch.get_rng_state()
    tok = load_tokenizer(text_data[1])
    layout = ([model], ParallelDims(world_size=1), torch.device("cpu"))
    results, seconds = in_loop.evaluate_in_loop(*layout, cfg, tok, contextlib.nullcontext)
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert set(results) == set(TASKS) and seconds > 0


def _torchrun(nproc: int, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--standalone"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    return subprocess.run(
        [*cmd, "-m", "pretrain.train", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.distributed
@pytest.mark.parametrize(
    "layout",
    [
        ("parallel.dp_shard=2",),
        pytest.param(("parallel.tp=2", "parallel.dp_shard=1"), marks=pytest.mark.slow),
        pytest.param(("parallel.pp=2", "parallel.dp_shard=1"), marks=pytest.mark.slow),
    ],
    ids=["fsdp-dp2", "tp2", "pp2"],
)
def test_two_ranks_train_the_same_and_score_as_one_process(text_data, tmp_path, layout):
    extra = ("metrics.log_interval=1", *layout)
    single = train(compose(overrides(text_data, tmp_path / "single", *EVAL)))
    for name, more in (("eval", EVAL), ("plain", ())):
        proc = _torchrun(2, overrides(text_data, tmp_path / name, *extra, *more), tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with_eval, plain = records(tmp_path / "eval"), records(tmp_path / "plain")
    assert [r["loss"] for r in with_eval] == [r["loss"] for r in plain]
    assert [r["grad_norm"] for r in with_eval] == [r["grad_norm"] for r in plain]
    rows = eval_rows(tmp_path / "eval")
    assert sorted(rows) == sorted(single.evals) == [2, 4, 6]
    for step, keys in single.evals.items():
        for key, value in keys.items():
            if key != "eval/seconds":
                assert rows[step][key] == pytest.approx(value, rel=1e-4, abs=1e-6), (step, key)


def _wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run / "metrics.jsonl").exists() and any(r["step"] >= step for r in records(run)):
            return
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.05)
    raise TimeoutError(f"step {step} not reached")


def test_kill9_and_resume_leave_every_eval_row_once(text_data, tmp_path):
    """Killed after evaluating step 4 with the latest checkpoint at 3: step 4 is redone, logged once."""
    run = tmp_path / "run"
    args = overrides(
        text_data, run, *EVAL, "training.steps=8", "metrics.log_interval=1", "metrics.tensorboard=true",
        "checkpoint.enabled=true", "checkpoint.interval=3", "checkpoint.async_mode=disabled",
    )  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pretrain.train", *args, "debug.hang_at_step=6"]  # stops before step 6
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_for_step(run, 5, proc)
    finally:
        proc.kill()  # SIGKILL
        proc.wait()
    assert latest_step(run / "checkpoints") == 3
    killed = eval_rows(run)
    assert sorted(killed) == [2, 4]
    resumed = train(compose(args))
    assert [r["step"] for r in records(run)] == list(range(1, 9))
    rows = eval_rows(run)
    assert sorted(rows) == [2, 4, 6, 8] and sorted(resumed.evals) == [4, 6, 8]
    for key, value in killed[4].items():  # step 4 redone from checkpoint 3 scores the same
        if key != "eval/seconds":
            assert rows[4][key] == value, key
    assert tb_steps(run, "eval/arc_easy/acc") == [2, 4, 6, 8]
