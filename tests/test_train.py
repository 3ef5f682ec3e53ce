"""Trainer: loss falls, layouts agree (single vs 2-rank FSDP, accumulation), metrics and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, compose, tiny_overrides, write_packed

from pretrain.fault import TrainingStopped
from pretrain.job_config import ConfigError
from pretrain.train import train


def _losses(metrics_path):
    return [json.loads(line)["loss"] for line in metrics_path.read_text().splitlines()]


def test_loss_falls_and_run_dir_is_written(packed_data, tmp_path):
    run = tmp_path / "run"
    result = train(compose(tiny_overrides(packed_data, run, "metrics.tensorboard=true")))
    assert len(result.losses) == 20
    assert sum(result.losses[-5:]) / 5 < sum(result.losses[:5]) / 5 - 0.5
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 5, 10, 15, 20]
    keys = {"step", "loss", "lr", "grad_norm", "tokens_per_s", "tflops", "mfu", "mem_gib", "data_wait_s"}
    assert keys <= set(records[0])
    assert records[-1]["loss"] == pytest.approx(result.losses[-1])
    assert (run / "config.yaml").read_text().count("llama3_debug") == 1
    assert any((run / "tb").iterdir())


def test_same_seed_same_losses_and_accumulation_is_exact(packed_data, tmp_path):
    a = train(compose(tiny_overrides(packed_data, tmp_path / "a", "training.steps=6")))
    b = train(compose(tiny_overrides(packed_data, tmp_path / "b", "training.steps=6")))
    assert a.losses == b.losses
    # One micro-batch of 8 vs four of 2: the same global-mean gradient.
    c = train(
        compose(
            tiny_overrides(packed_data, tmp_path / "c", "training.steps=6", "training.micro_batch_size=2")
        )
    )
    assert c.losses == pytest.approx(a.losses, rel=1e-5)
    d = train(compose(tiny_overrides(packed_data, tmp_path / "d", "training.steps=6", "training.seed=1")))
    assert d.losses != a.losses


def test_validation_loss_is_logged(packed_data, tmp_path):
    run = tmp_path / "run"
    extra = (f"validation.path={packed_data / 'val'}", "validation.interval=10", "validation.steps=2")
    result = train(compose(tiny_overrides(packed_data, run, *extra)))
    assert sorted(result.val_losses) == [10, 20]
    assert result.val_losses[20] < result.val_losses[10] + 0.5
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "val_loss" in x]
    assert [r["step"] for r in logged] == [10, 20]


def _torchrun(nproc: int, overrides: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={nproc}",
        "--standalone",
        "-m",
        "pretrain.train",
        *overrides,
    ]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.distributed
@pytest.mark.parametrize("layout", ["parallel.dp_shard=2", "parallel.dp_replicate=2"])
def test_fsdp_two_ranks_equal_single_process(packed_data, tmp_path, layout):
    steps = ("training.steps=8", "metrics.log_interval=1")
    single = train(compose(tiny_overrides(packed_data, tmp_path / "single", *steps)))
    run = tmp_path / "fsdp"
    proc = _torchrun(2, tiny_overrides(packed_data, run, *steps, layout), tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "dp=2" in proc.stdout
    assert _losses(run / "metrics.jsonl") == pytest.approx(single.losses, rel=1e-4)


@pytest.mark.distributed
def test_torchrun_bad_degrees_fail_on_every_rank(packed_data, tmp_path):
    proc = _torchrun(2, tiny_overrides(packed_data, tmp_path / "r", "parallel.dp_shard=3"), tmp_path)
    assert proc.returncode != 0
    assert "world_size=2" in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    ("extra", "error", "match"),
    [
        (["+model.hidden=3"], Exception, "hidden"),
        (["model.name=llama3_9b"], ValueError, "unknown model 'llama3_9b'"),
        (["model.max_seq_len=16"], ValueError, "data.seq_len=32 exceeds max_seq_len=16"),
        (["data.seq_len=64"], ValueError, "packed with seq_len=32"),
        (["training.micro_batch_size=3"], ValueError, "multiple of training.micro_batch_size"),
        (["training.global_batch_size=1024", "training.micro_batch_size=1024"], ValueError, "exceeds the 64"),
        (["parallel.tp=2"], ValueError, "world_size=1"),
        (["training.dtype=float16"], ValueError, "training.dtype"),
        (["lr.schedule=linear"], ValueError, "lr.schedule"),
        (["optim.lr=1e30", "training.max_norm=0"], TrainingStopped, "exit 4: step \\d+: loss="),
    ],
)
def test_bad_input_errors(packed_data, tmp_path, extra, error, match):
    with pytest.raises(error, match=match):
        train(compose(tiny_overrides(packed_data, tmp_path / "run", *extra)))


def test_vocab_mismatch_names_the_fix(tmp_path):
    data = write_packed(tmp_path / "big" / "train", n_seq=16, seq_len=32, vocab=200)
    with pytest.raises(ValueError, match="model.vocab_size=200"):
        train(compose(tiny_overrides(data.parent, tmp_path / "run")))


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no manifest"):
        train(compose(tiny_overrides(tmp_path / "nowhere", tmp_path / "run")))


def test_bf16_tracks_fp32(packed_data, tmp_path):
    fp32 = train(compose(tiny_overrides(packed_data, tmp_path / "a", "training.steps=4")))
    bf16 = train(
        compose(tiny_overrides(packed_data, tmp_path / "b", "training.steps=4", "training.dtype=bfloat16"))
    )
    assert bf16.losses != fp32.losses
    assert bf16.losses == pytest.approx(fp32.losses, rel=2e-2)


def test_sample_after_training_uses_the_data_tokenizer(tmp_path):
    """End to end with a real tokenizer: pack text, train a few steps, sample from the prompt."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from data_pipeline.pack import pack_chunks
    from data_pipeline.tokenizer import Tokenizer
    from data_pipeline.train_tokenizer import train_tokenizer

    docs = tmp_path / "docs"
    docs.mkdir()
    texts = [f"To be, or not to be, that is the question {i}." for i in range(200)]
    pq.write_table(pa.table({"id": [str(i) for i in range(200)], "text": texts}), docs / "a.parquet")
    tok = Tokenizer.from_file()
    pack_chunks([docs], tmp_path / "packed" / "train", tok, seq_len=32)
    extra = (
        "model.vocab_size=128256",
        "training.steps=2",
        "training.sample_prompt=To be",
        "training.sample_tokens=5",
    )
    result = train(compose(tiny_overrides(tmp_path / "packed", tmp_path / "run", *extra)))
    assert result.sample.startswith("To be") and len(result.sample) > len("To be")
    other = train_tokenizer(
        [f"word{i} other text {i * 7}" for i in range(3000)], 1024, tmp_path / "other.model"
    )
    with pytest.raises(ValueError, match="not the tokenizer the data was packed with"):
        train(
            compose(tiny_overrides(tmp_path / "packed", tmp_path / "run2", *extra, f"data.tokenizer={other}"))
        )


def test_shard_without_token_columns_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = write_packed(tmp_path / "d" / "train", n_seq=16, seq_len=32, vocab=128)
    pq.write_table(pa.table({"text": ["x"]}), data / "part-00009.parquet")
    with pytest.raises(ValueError, match="part-00009.parquet: training shard needs columns"):
        train(compose(tiny_overrides(data.parent, tmp_path / "run")))
