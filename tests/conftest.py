"""Shared fixtures: small packed datasets and a Hydra-composed trainer config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("OMP_NUM_THREADS", "1")


def write_packed(
    path: Path, *, n_seq: int, seq_len: int, vocab: int, seed: int = 0, n_shards: int = 2
) -> Path:
    """Packed shards of learnable token streams (documents that count up mod `vocab` in random strides)."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    rows, cus = [], []
    for _ in range(n_seq):
        doc_lens = rng.integers(seq_len // 4, seq_len, size=4)
        tokens, cu = [], [0]
        for n in doc_lens:
            start, stride = rng.integers(0, vocab), rng.integers(1, 4)
            tokens.extend(((start + stride * np.arange(n)) % vocab).tolist())
            if len(tokens) >= seq_len + 1:
                break
            cu.append(len(tokens))
        row = tokens[: seq_len + 1]
        n_real = len(row)
        row += [0] * (seq_len + 1 - n_real)
        rows.append(row)
        cus.append([c for c in cu if c < n_real] + [n_real])
    # Last row half padding, so the padding/ignore path is always exercised.
    rows[-1][seq_len // 2 :] = [0] * (seq_len + 1 - seq_len // 2)
    cus[-1] = [c for c in cus[-1] if c < seq_len // 2] + [seq_len // 2]
    for i, idx in enumerate(np.array_split(np.arange(n_seq), n_shards)):
        table = pa.table(
            {
                "tokens": pa.array([rows[j] for j in idx], type=pa.list_(pa.int32())),
                "cu_seqlens": pa.array([cus[j] for j in idx], type=pa.list_(pa.int32())),
            }
        )
        pq.write_table(table, path / f"part-{i:05d}.parquet")
    manifest = {
        "format": "andes-packed-v1",
        "seq_len": seq_len,
        "num_sequences": n_seq,
        "tokenizer": {
            "name": "synthetic",
            "sha256": "0" * 64,
            "n_vocab": vocab,
            "bos_id": 0,
            "eos_id": 1,
            "pad_id": 0,
        },
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture(scope="session")
def packed_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("packed")
    write_packed(root / "train", n_seq=64, seq_len=32, vocab=128)
    write_packed(root / "val", n_seq=16, seq_len=32, vocab=128, seed=1, n_shards=1)
    return root


def tiny_overrides(data: Path, run_dir: Path, *extra: str) -> list[str]:
    """Hydra overrides for a ~100k-parameter model that trains in a second on CPU."""
    return [
        "model=llama3_debug",
        "model.vocab_size=128",
        "model.dim=64",
        "model.n_layers=2",
        "model.n_heads=4",
        "model.n_kv_heads=2",
        "model.multiple_of=16",
        f"data.path={data / 'train'}",
        "data.seq_len=32",
        "training.global_batch_size=8",
        "training.micro_batch_size=4",
        "training.steps=20",
        "optim.lr=3e-3",
        "lr.warmup_steps=2",
        "metrics.log_interval=5",
        "metrics.tensorboard=false",
        f"run.dir={run_dir}",
        *extra,
    ]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from pretrain.job_config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need CUDA: skipped (not failed) on CPU machines and in CI."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
