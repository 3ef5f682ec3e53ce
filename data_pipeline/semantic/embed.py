"""Embed one Parquet shard of documents into a Parquet shard of float16 embeddings.

Output columns: `id` (string) and `embedding` (fixed-size list of float16, the encoder's dim), one row
per input row in input order; a text that is empty or only whitespace gets a null embedding (it has
no meaning to compare: semantic dedup leaves such documents alone, as MinHash leaves wordless ones,
and a classifier scores them itself). float16 halves the disk and memory of the later k-means and similarity
passes; unit vectors keep ~3 significant digits per component, far finer than a dedup threshold.
The file's Parquet key-value metadata holds the encoder under `andes.encoder` (JSON of
`encoder_metadata`: path, sha256 of the weights, pooling, token limit...), so a later stage can refuse
embeddings of different encoders. The file is written under a temp name and renamed when complete.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_pipeline.io import atomic_path, check_string_column, iter_batches, open_parquet
from data_pipeline.semantic.encoder import CHUNK_TEXTS, Encoder, encode, encoder_metadata

METADATA_KEY = b"andes.encoder"


def embedding_schema(dim: int, encoder: dict) -> pa.Schema:
    """Schema of an embeddings shard; `encoder` (encoder_metadata) goes into its key-value metadata."""
    metadata = {METADATA_KEY: json.dumps(encoder, sort_keys=True)}
    return pa.schema([("id", pa.string()), ("embedding", pa.list_(pa.float16(), dim))], metadata=metadata)


def embeddings_table(
    ids: list[str], vectors: np.ndarray, schema: pa.Schema, valid: np.ndarray | None = None
) -> pa.Table:
    """A table of ids and their vectors cast to float16, in the given schema; rows where `valid` is
    False get a null embedding (their vector rows are ignored)."""
    dim = schema.field("embedding").type.list_size
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float16).reshape(-1))
    mask = None if valid is None or valid.all() else pa.array(~np.asarray(valid, dtype=bool))
    column = pa.FixedSizeListArray.from_arrays(flat, dim, mask=mask)
    return pa.table({"id": pa.array(ids, pa.string()), "embedding": column}, schema=schema)


def read_encoder_metadata(path: Path | str) -> dict:
    """The encoder recorded in an embeddings shard; a file without one raises ValueError naming it."""
    metadata = open_parquet(path).schema_arrow.metadata or {}
    if METADATA_KEY not in metadata:
        raise ValueError(f"{path}: no '{METADATA_KEY.decode()}' metadata; not written by embed_shard")
    return json.loads(metadata[METADATA_KEY])


def embed_shard(
    encoder: Encoder, input: Path | str, output: Path | str, *, batch_rows: int = CHUNK_TEXTS
) -> int:
    """Embed the `text` of every row of `input` (with its `id`) into `output`; returns the row count."""
    input, output = Path(input), Path(output)
    schema = embedding_schema(encoder.dim, encoder_metadata(encoder))
    rows = 0
    with atomic_path(output) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in iter_batches(input, ["id", "text"], batch_size=batch_rows):
            ids = check_string_column(input, batch, "id", rows)
            texts = check_string_column(input, batch, "text", rows)
            vectors, valid = embed_texts(encoder, texts, where=f"{input}: ", first_row=rows)
            writer.write_table(embeddings_table(ids, vectors, schema, valid))
            rows += batch.num_rows
    return rows


def embed_texts(
    encoder: Encoder, texts: Sequence[str | None], *, where: str = "", first_row: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, valid) of a batch: texts that are None (a bad row skipped upstream), empty or only
    whitespace are not embedded (valid False, zero vector); errors name `{where}row {first_row + i}`."""
    valid = np.array([t is not None and bool(t.strip()) for t in texts], dtype=bool)
    vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    if valid.any():
        with_text = np.flatnonzero(valid)
        kept = [texts[i] for i in with_text]
        vectors[with_text] = encode(encoder, kept, where=where, first_row=first_row + with_text)
    return vectors, valid


def check_same_encoder(files: Sequence[Path]) -> dict | None:
    """The encoder all embeddings files record; ValueError naming two files that disagree."""
    first = None
    for path in files:
        meta = read_encoder_metadata(path)
        if first is None:
            first = (path, meta)
        elif meta != first[1]:
            changed = sorted(k for k in set(meta) | set(first[1]) if meta.get(k) != first[1].get(k))
            raise ValueError(
                f"{path} and {first[0]} were embedded by different encoders (differing: {', '.join(changed)})"
            )
    return None if first is None else first[1]
