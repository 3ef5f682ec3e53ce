"""Embed one Parquet shard of documents into a Parquet shard of float16 embeddings.

Output columns: `id` (string) and `embedding` (fixed-size list of float16, the encoder's dim), one row
per input row in input order. float16 halves the disk and memory of the later k-means and similarity
passes; unit vectors keep ~3 significant digits per component, far finer than a dedup threshold.
The file's Parquet key-value metadata holds the encoder under `andes.encoder` (JSON of
`encoder_metadata`: path, sha256 of the weights, pooling, token limit...), so a later stage can refuse
embeddings of different encoders. The file is written under a temp name and renamed when complete.
"""

from __future__ import annotations

import json
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


def embeddings_table(ids: list[str], vectors: np.ndarray, schema: pa.Schema) -> pa.Table:
    """A table of ids and their vectors cast to float16, in the given schema."""
    dim = schema.field("embedding").type.list_size
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float16).reshape(-1))
    column = pa.FixedSizeListArray.from_arrays(flat, dim)
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
            vectors = encode(encoder, texts, where=f"{input}: ", first_row=rows)
            writer.write_table(embeddings_table(ids, vectors, schema))
            rows += batch.num_rows
    return rows
