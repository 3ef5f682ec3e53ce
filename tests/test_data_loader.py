"""The training loader: lazy block reads, layout-independent order, resume across DP degrees."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_pipeline.packed_format import MANIFEST, PACKED_FORMAT, SHARD_SCHEMA
from pretrain.data import CACHED_BLOCKS, PackedDataset, StepLoader

SEQ = 8


@pytest.fixture
def dataset(tmp_path):
    """60 rows in 3 shards with row groups of 7 rows; row r holds the tokens r*100 + [0..8]."""
    rows = np.arange(60)[:, None] * 100 + np.arange(SEQ + 1)[None, :]
    for f, (lo, hi) in enumerate([(0, 25), (25, 40), (40, 60)]):
        part = rows[lo:hi].astype(np.int32)
        tokens = pa.ListArray.from_arrays(
            pa.array(np.arange(0, (len(part) + 1) * (SEQ + 1), SEQ + 1, dtype=np.int32)),
            pa.array(part.ravel()),
        )
        cu = pa.array([[0, 3, SEQ + 1] for _ in part], type=pa.list_(pa.int32()))
        pq.write_table(
            pa.Table.from_arrays([tokens, cu], schema=SHARD_SCHEMA),
            tmp_path / f"part-{f:05d}.parquet",
            row_group_size=7,
        )
    tok = {"name": "t", "sha256": "0", "n_vocab": 10_000, "bos_id": 1, "eos_id": 2, "pad_id": 0}
    (tmp_path / MANIFEST).write_text(json.dumps({"format": PACKED_FORMAT, "seq_len": SEQ, "tokenizer": tok}))
    return PackedDataset(tmp_path, SEQ)


def rows_of(batches) -> list[int]:
    return [int(t) // 100 for b in batches for t in b.tokens[:, 0]]


def test_blocks_are_row_groups_and_reads_are_lazy(dataset):
    assert len(dataset) == 60 and list(dataset.block_sizes) == [7, 7, 7, 4, 7, 7, 1, 7, 7, 6]
    tokens, cu = dataset.rows(np.array([59, 0, 26]))
    assert tokens[:, 0].tolist() == [5900, 0, 2600] and [c.tolist() for c in cu] == [[0, 3, 9]] * 3
    for b in range(len(dataset.block_sizes)):
        dataset.block(b)
    assert len(dataset._cache) == CACHED_BLOCKS  # memory stays bounded


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_row_once_per_epoch_and_layout_independent(dataset, shuffle):
    def run(dp: int, steps: int) -> list[list[int]]:
        loaders = [
            StepLoader(
                dataset, global_batch_size=12, micro_batch_size=2, dp_rank=r, dp_size=dp, shuffle=shuffle
            )
            for r in range(dp)
        ]
        return [sum((rows_of(ld.next_step()) for ld in loaders), []) for _ in range(steps)]

    one = run(1, 10)  # two epochs of 5 steps
    assert sorted(sum(one[:5], [])) == list(range(60)) and sorted(sum(one[5:], [])) == list(range(60))
    assert run(2, 10) == one and run(3, 10) == one  # the same global batches in every layout
    assert (sum(one[:5], []) != list(range(60))) == shuffle
    if shuffle:
        assert sum(one[:5], []) != sum(one[5:], [])  # each epoch has its own order


def test_resume_with_another_dp_degree_continues_exactly(dataset):
    first = [
        StepLoader(dataset, global_batch_size=12, micro_batch_size=3, dp_rank=r, dp_size=2) for r in range(2)
    ]
    seen = []
    for _ in range(3):
        seen += sum((rows_of(ld.next_step()) for ld in first), [])
    state = first[0].state_dict()
    resumed = [
        StepLoader(dataset, global_batch_size=12, micro_batch_size=2, dp_rank=r, dp_size=3) for r in range(3)
    ]
    for ld in resumed:
        ld.load_state_dict(state)
    for _ in range(2):
        seen += sum((rows_of(ld.next_step()) for ld in resumed), [])
    assert sorted(seen) == list(range(60))  # 5 steps x 12 = one epoch: nothing repeated or skipped
    with pytest.raises(ValueError, match="cannot resume"):
        StepLoader(dataset, global_batch_size=6, micro_batch_size=2).load_state_dict(state)


def test_batch_fields_follow_cu_seqlens(dataset):
    loader = StepLoader(dataset, global_batch_size=4, micro_batch_size=4, shuffle=False, prefetch=False)
    (batch,) = loader.next_step()
    assert batch.tokens[0].tolist() == list(range(SEQ))
    assert batch.doc_ids[0].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert batch.positions[0].tolist() == [0, 1, 2, 0, 1, 2, 3, 4]
    assert batch.labels[0].tolist() == list(range(1, SEQ + 1))


def test_corrupt_row_lengths_are_named(tmp_path, dataset):
    bad = pa.ListArray.from_arrays(pa.array([0, 5], type=pa.int32()), pa.array(np.arange(5, dtype=np.int32)))
    table = pa.Table.from_arrays([bad, pa.array([[0, 5]], type=pa.list_(pa.int32()))], schema=SHARD_SCHEMA)
    pq.write_table(table, dataset.path / "part-00009.parquet")
    broken = PackedDataset(dataset.path, SEQ)
    with pytest.raises(ValueError, match="part-00009.parquet: rows must hold seq_len"):
        broken.rows(np.array([60]))
