"""Tokenize documents and cut the token stream into fixed-length training rows (`andes-data pack`).

Documents are encoded as <bos> text <eos> and concatenated in input order; the stream is cut into rows
of seq_len + 1 tokens (the trainer takes inputs = row[:-1], labels = row[1:]), so a document may
continue into the next row and nothing is truncated. Only the last row of a split is padded.
Each row's `cu_seqlens` lists where every document (or continued piece) starts, then the number of
real tokens, which is what document-masked attention needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from data_pipeline.io import check_string_column, iter_batches, list_parquet, open_parquet
from pretrain.tokenizer import Tokenizer

PACKED_FORMAT = "andes-packed-v1"
MANIFEST = "manifest.json"
VAL_DIR = "val"
SHARD_SCHEMA = pa.schema([("tokens", pa.list_(pa.int32())), ("cu_seqlens", pa.list_(pa.int32()))])
# Encoding threads: tiktoken releases the GIL, more threads than cores only adds switching.
ENCODE_THREADS = min(8, os.cpu_count() or 1)
SUMMARY_KEYS = ("num_sequences", "total_tokens", "padding_tokens", "num_documents")


def is_val_document(doc_id: str, val_fraction: float, seed: int = 0) -> bool:
    """Assign a document to validation by a hash of its id, so the split survives reordering and reruns."""
    if val_fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}\0{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < val_fraction * 2**64


class _SplitWriter:
    """Packs one split's documents into rows and writes a shard every `rows_per_shard` rows."""

    def __init__(self, directory: Path, seq_len: int, pad_id: int, rows_per_shard: int):
        self.directory = directory
        self.row_len = seq_len + 1
        self.pad_id = pad_id
        self.rows_per_shard = rows_per_shard
        self.row: list[int] = []
        self.starts: list[int] = []
        self.rows: list[np.ndarray] = []
        self.cu_seqlens: list[list[int]] = []
        self.files: list[str] = []
        self.num_sequences = self.total_tokens = self.padding_tokens = self.num_documents = 0

    def add(self, ids: list[int]) -> None:
        self.num_documents += 1
        self.total_tokens += len(ids)
        pos = 0
        while pos < len(ids):
            take = ids[pos : pos + self.row_len - len(self.row)]
            self.starts.append(len(self.row))
            self.row.extend(take)
            pos += len(take)
            if len(self.row) == self.row_len:
                self._end_row()

    def _end_row(self) -> None:
        n_real = len(self.row)
        self.padding_tokens += self.row_len - n_real
        self.rows.append(np.array(self.row + [self.pad_id] * (self.row_len - n_real), dtype=np.int32))
        self.cu_seqlens.append([*self.starts, n_real])
        self.row, self.starts = [], []
        if len(self.rows) == self.rows_per_shard:
            self._write_shard()

    def _write_shard(self) -> None:
        n = len(self.rows)
        tokens = pa.ListArray.from_arrays(
            pa.array(np.arange(0, (n + 1) * self.row_len, self.row_len, dtype=np.int32)),
            pa.array(np.concatenate(self.rows)),
        )
        cu = pa.array(self.cu_seqlens, type=pa.list_(pa.int32()))
        name = f"part-{len(self.files):05d}.parquet"
        self.directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            pa.Table.from_arrays([tokens, cu], schema=SHARD_SCHEMA), self.directory / name, compression="zstd"
        )
        self.files.append(name)
        self.num_sequences += n
        self.rows, self.cu_seqlens = [], []

    def finish(self, header: dict) -> dict:
        """Pad and flush the last row, write the manifest, return it."""
        if self.row:
            self._end_row()
        if self.rows:
            self._write_shard()
        manifest = {
            **header,
            "num_sequences": self.num_sequences,
            "total_tokens": self.total_tokens,
            "padding_tokens": self.padding_tokens,
            "num_documents": self.num_documents,
            "truncations": 0,
            "files": self.files,
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        return manifest


def _read_documents(path: Path) -> Iterator[tuple[list[str], list[str]]]:
    """Yield (ids, texts) per record batch; rows without an `id` get `<file name>#<row>`."""
    row = 0
    for batch in iter_batches(path, ["text"], optional=["id"]):
        texts = check_string_column(path, batch, "text", row)
        ids = [f"{path.name}#{row + i}" for i in range(batch.num_rows)]
        if "id" in batch.schema.names:
            given = batch.column("id").to_pylist()
            ids = [made if value is None else str(value) for made, value in zip(ids, given, strict=True)]
        yield ids, texts
        row += batch.num_rows


def _check_output(output: Path) -> None:
    """Refuse to replace anything but an earlier pack output, so a typo cannot wipe a directory."""
    if output.is_file() or (output.is_dir() and any(output.iterdir()) and not (output / MANIFEST).is_file()):
        raise ValueError(f"{output}: exists and is not an `andes-data pack` output; refusing to overwrite")


def _replace_dir(staging: Path, output: Path) -> None:
    """Swap the finished staging directory in for `output` (the whole output appears at once)."""
    if output.exists():
        old = output.with_name(output.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(output, old)
        os.replace(staging, output)
        shutil.rmtree(old)
    else:
        os.replace(staging, output)


def _pack_documents(
    files: list[Path],
    tokenizer: Tokenizer,
    train: _SplitWriter,
    val: _SplitWriter | None,
    val_fraction: float,
    seed: int,
) -> int:
    """Encode every document into its split's writer; return the number of empty documents skipped."""
    empty = 0
    num_rows = sum(open_parquet(f).metadata.num_rows for f in files)
    with tqdm(total=num_rows, unit="doc", desc="pack", file=sys.stderr, disable=None) as progress:
        for path in files:
            for doc_ids, texts in _read_documents(path):
                kept = [(i, t) for i, t in zip(doc_ids, texts, strict=True) if t.strip()]
                empty += len(texts) - len(kept)
                encoded = tokenizer.encode_batch(
                    [t for _, t in kept], bos=True, eos=True, num_threads=ENCODE_THREADS
                )
                for (doc_id, _), ids in zip(kept, encoded, strict=True):
                    in_val = val is not None and is_val_document(doc_id, val_fraction, seed)
                    (val if in_val else train).add(ids)
                progress.update(len(texts))
    return empty


def pack_chunks(
    inputs: list[Path],
    output: Path,
    tokenizer: Tokenizer,
    seq_len: int,
    val_fraction: float = 0.0,
    rows_per_shard: int = 4096,
    seed: int = 0,
) -> dict:
    """Pack the `text` of Parquet inputs into rows of seq_len + 1 tokens under `output`; return the manifest.

    Documents with no non-whitespace text are skipped (counted as `empty_documents`); `seed` salts
    the validation hash. The result is written to a staging directory and renamed into
    place, so a failed or killed run leaves the previous output (or none) and never a partial one.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len={seq_len} must be >= 1")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction} must be in [0, 1)")
    if not 1 <= rows_per_shard * (seq_len + 1) < 2**31:  # list<int32> offsets address one shard's tokens
        raise ValueError(f"rows_per_shard={rows_per_shard} must be >= 1 and hold fewer than 2**31 tokens")
    output = Path(output).resolve()  # a name to derive the staging dir from, even for "."
    files = [f for path in inputs for f in list_parquet(path)]
    _check_output(output)

    staging = output.with_name(output.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)  # left over from a killed run
    staging.mkdir(parents=True)
    try:
        train = _SplitWriter(staging, seq_len, tokenizer.pad_id, rows_per_shard)
        val = None
        if val_fraction:
            val = _SplitWriter(staging / VAL_DIR, seq_len, tokenizer.pad_id, rows_per_shard)
        empty = _pack_documents(files, tokenizer, train, val, val_fraction, seed)
        if train.num_documents + (val.num_documents if val else 0) == 0:
            raise ValueError(f"no non-empty documents in {[str(p) for p in inputs]}")

        header = {
            "format": PACKED_FORMAT,
            "tokenizer": {
                "name": tokenizer.name,
                "sha256": tokenizer.sha256,
                "n_vocab": tokenizer.n_vocab,
                "bos_id": tokenizer.bos_id,
                "eos_id": tokenizer.eos_id,
                "pad_id": tokenizer.pad_id,
            },
            "seq_len": seq_len,
            "inputs": [f.name for f in files],
            "val_fraction": val_fraction,
            "seed": seed,
        }
        val_summary = None
        if val is not None:
            val_manifest = val.finish({**header, "split": "val"})
            val_summary = {k: val_manifest[k] for k in SUMMARY_KEYS}
        manifest = train.finish({**header, "split": "train", "empty_documents": empty, "val": val_summary})
        _replace_dir(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def read_manifest(path: Path | str) -> dict:
    """Read `manifest.json` of a pack output directory (or the file itself), checking its format."""
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no manifest; is {path} an `andes-data pack` output?")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != PACKED_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{file}: format {found!r}, expected {PACKED_FORMAT!r}")
    return manifest
