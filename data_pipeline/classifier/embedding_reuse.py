"""Reusing the embeddings semantic dedup stored, instead of encoding the documents a second time.

Semantic dedup writes, per input shard `<stem>`, `OUT/.dedup/embeddings/<stem>.parquet` (`id`,
`embedding`, the encoder in the Parquet metadata; data_pipeline/semantic/embed.py) and its kept rows
as `OUT/<stem>-NNNNN.parquet`. A classifier scoring `OUT` looks each document up by `id` there (or
in the directory named by `embeddings`) and encodes only what it does not find, or finds null
(empty text).

The rule: stored embeddings are reused only if they were made as the classifier's encoder would
make them, i.e. `REUSE_KEYS` of both encoder records are equal. The compute dtype may differ
(semantic dedup runs in bfloat16 on CUDA): every stored vector is float16 whatever computed it, so
it already carries a rounding of ~5e-4 per unit-vector component, and bfloat16 compute moves a
MiniLM component by ~3e-3 (data_pipeline/semantic/encoder.py); a head's score moves by the same
order, small against any useful threshold but not zero, so a score from a stored vector can differ
from a freshly encoded one in its third decimal. Anything else that differs means other vectors:
they are not reused, and one line says why.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REUSE_KEYS = ("weights_sha256", "pooling", "normalize", "lowercase", "max_tokens", "dim")
EMBEDDINGS_DIR = "embeddings"  # under the dedup stage's work directory (guard.DEDUP_WORK_DIR)


def encoder_mismatch(stored: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """Which of REUSE_KEYS differ between two encoder records, as `key stored vs wanted`; None if none."""
    differ = [
        f"{key} {stored.get(key)!r} vs {wanted.get(key)!r}"
        for key in REUSE_KEYS
        if stored.get(key) != wanted.get(key)
    ]
    return ", ".join(differ) or None


def embeddings_file(shard: Path, directory: Path | None) -> Path | None:
    """The stored embeddings of a shard: `<dir>/<stem>.parquet`, for the shard's stem or, for a stage
    output part `<stem>-NNNNN.parquet`, its input's; `dir` defaults to the dedup output's own."""
    from data_pipeline.guard import DEDUP_WORK_DIR
    from data_pipeline.shard import part_stem

    root = directory if directory is not None else shard.parent / DEDUP_WORK_DIR / EMBEDDINGS_DIR
    for stem in (shard.stem, part_stem(shard.name)):
        if stem and (root / f"{stem}.parquet").is_file():
            return root / f"{stem}.parquet"
    return None


def _read_vectors(file: Path, dim: int) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(ids, float16 vectors, valid) of an embeddings file; a null embedding is a zero row, not valid."""
    table = pq.read_table(file, columns=["id", "embedding"])
    column = table.column("embedding").combine_chunks()
    if column.type != pa.list_(pa.float16(), dim):
        raise ValueError(f"column 'embedding' is {column.type}, expected fixed_size_list<halffloat>[{dim}]")
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    vectors = np.zeros((len(column), dim), dtype=np.float16)
    vectors[valid] = pc.list_flatten(column).to_numpy().reshape(-1, dim)
    return table.column("id").combine_chunks(), vectors, valid


def _input_ids(shard: Path) -> pa.Array:
    """The shard's `id` column, or the ids processing gives rows without one."""
    from data_pipeline.shard import made_ids

    file = pq.ParquetFile(shard)
    if "id" not in file.schema_arrow.names:
        return pa.array(made_ids(shard.stem, 0, file.metadata.num_rows), pa.string())
    return file.read(columns=["id"]).column("id").combine_chunks()


class StoredEmbeddings:
    """The stored embedding of each row of the current shard, if any; refuses other encoders' vectors."""

    def __init__(self, directory: Path | str | None, encoder: dict[str, Any]) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.encoder = encoder
        self.reasons: set[str] = set()  # printed once each per process
        self.positions = np.zeros(0, dtype=np.int64)  # per input row: its row in `vectors`, or -1
        self.vectors = np.zeros((0, int(encoder["dim"])), dtype=np.float16)

    def _refuse(self, where: Path, why: str) -> None:
        line = f"{where}: stored embeddings not reused, {why}; encoding the documents instead"
        if line not in self.reasons:
            self.reasons.add(line)
            print(line, file=sys.stderr)

    def begin_shard(self, shard: Path) -> None:
        """Find and read the shard's stored embeddings (none found: every lookup misses)."""
        from data_pipeline.semantic.embed import read_encoder_metadata

        self.positions = np.zeros(0, dtype=np.int64)
        file = embeddings_file(Path(shard), self.directory)
        if file is None:
            return
        try:
            problem = encoder_mismatch(read_encoder_metadata(file), self.encoder)
            if problem is not None:  # the same for every file of the directory: said once
                self._refuse(file.parent, f"made by another encoder ({problem})")
                return
            ids, self.vectors, valid = _read_vectors(file, self.vectors.shape[1])
            positions = pc.index_in(_input_ids(Path(shard)), value_set=ids)
        except (ValueError, OSError, pa.ArrowException) as e:  # an optimisation: never fatal
            self._refuse(file, f"unreadable ({e})")
            return
        positions = positions.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        found = positions >= 0
        positions[found] = np.where(valid[positions[found]], positions[found], -1)  # null: not found
        self.positions = positions

    def lookup(self, rows: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
        """(float32 vectors, found mask) for input rows of the current shard; None rows are not looked up."""
        n = len(self.positions)
        at = np.array([-1 if r is None or r >= n else self.positions[r] for r in rows], dtype=np.int64)
        found = at >= 0
        vectors = np.zeros((len(rows), self.vectors.shape[1]), dtype=np.float32)
        vectors[found] = self.vectors[at[found]]
        return vectors, found
