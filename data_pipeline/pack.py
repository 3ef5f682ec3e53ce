"""Tokenize documents and pack them into fixed-length training rows (`andes-data pack`).

Documents are encoded as <bos> text <eos> (Llama 3 tiktoken, or any `load_tokenizer` one, on
threads) into one int32 token stream per split on disk, then packed into rows of seq_len + 1 tokens
(the trainer takes inputs = row[:-1], labels = row[1:]) by `packing.py`: best-fit-decreasing by
default, so a document that fits a row is never split, or concatenate-and-chunk. Rows are shuffled
with a seed and written as zstd Parquet shards; each row's `cu_seqlens` lists where every document
(or piece) starts, then the number of real tokens, which is what document-masked attention needs.
Several inputs can be mixed in given token proportions (`mix_selection`); the manifest records the
realised mix, padding and how many documents had to be split because they are longer than a row.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from data_pipeline.config import PACK_STRATEGIES, PackStage
from data_pipeline.guard import check_io
from data_pipeline.io import check_string_column, iter_batches, list_parquet, open_parquet
from data_pipeline.packed_format import MANIFEST, PACKED_FORMAT, SHARD_SCHEMA
from data_pipeline.packing import assemble, best_fit_rows, concat_chunks
from data_pipeline.tokenizer import AnyTokenizer

VAL_DIR = "val"
# Encoding threads: tiktoken releases the GIL, more threads than cores only adds switching.
ENCODE_THREADS = min(8, os.cpu_count() or 1)
SUMMARY_KEYS = ("num_sequences", "total_tokens", "padding_tokens", "num_documents")
STRATEGIES = PACK_STRATEGIES  # data_pipeline/config.py, shared with the CLI and recipes
# Errors of the file system written to (no space, quota, file too large, read-only): named as the output's.
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
# Rows per Parquet row group: the trainer's loader reads one row group at a time (8 MB at 8K tokens).
ROW_GROUP_ROWS = 256


def is_val_document(doc_id: str, val_fraction: float, seed: int = 0) -> bool:
    """Assign a document to validation by a hash of its id, so the split survives reordering and reruns."""
    if val_fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}\0{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < val_fraction * 2**64


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


PACK_FILE = re.compile(r"(part-\d{5}\.parquet|\.tokens-(train|val)\.bin|manifest\.json)(\.tmp)?")
"""Files a pack run writes: shards, the manifest, and (while it runs) its token buffers."""


def _foreign_files(directory: Path) -> list[Path]:
    """Files under `directory` that no pack run writes (its `val/` split holds the same kinds)."""
    found = []
    for path in directory.rglob("*"):
        rel = path.relative_to(directory)
        inside_val = rel.parts[0] == VAL_DIR and len(rel.parts) == 2
        if path.is_dir() and rel.parts == (VAL_DIR,):
            continue
        if path.is_dir() or not (len(rel.parts) == 1 or inside_val) or not PACK_FILE.fullmatch(path.name):
            found.append(path)
    return found


def _check_replaceable(path: Path, what: str, *, manifest: bool = False) -> None:
    """Refuse to delete `path` unless a pack run wrote everything in it (a typo cannot wipe a folder).

    An earlier output must also have its manifest: a folder of the user's own `part-*.parquet`
    files has none.
    """
    if path.is_file() or path.is_symlink():
        raise ValueError(f"{path}: exists and is not {what}; refusing to overwrite it")
    if not path.is_dir() or not any(path.iterdir()):
        return
    foreign = _foreign_files(path)
    if foreign:
        raise ValueError(f"{path}: {foreign[0]} was not written by andes-data pack; refusing to overwrite it")
    if manifest and not (path / MANIFEST).is_file():
        raise ValueError(f"{path}: exists and is not {what} (no {MANIFEST}); refusing to overwrite it")


def _check_output(output: Path) -> None:
    """The output, the staging dir and the previous output's parking place hold only pack files."""
    _check_replaceable(output, "an `andes-data pack` output", manifest=True)
    _check_replaceable(output.with_name(output.name + ".tmp"), "a pack staging directory")
    _check_replaceable(output.with_name(output.name + ".old"), "a replaced pack output")


def _discard(staging: Path, *sinks: _TokenSink | None) -> None:
    """Remove a failed run's staging directory. Closing a sink flushes its buffer, which on a full
    disk fails again; the bytes are being thrown away, so that failure must not stop the removal."""
    for sink in sinks:
        if sink is not None:
            with contextlib.suppress(OSError):
                sink.file.close()
    shutil.rmtree(staging, ignore_errors=True)


def _naming_output(e: OSError, output: Path) -> OSError:
    """A write error (full disk, quota) as one line naming the output; the OS names no file."""
    message = f"{output}: {e.strerror or e}; nothing was written (an earlier output is unchanged)"
    return OSError(e.errno, message)


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


class _TokenSink:
    """One split's token stream on disk (int32, documents back to back) plus per-document metadata."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "wb")  # noqa: SIM115 (closed in finish)
        self.size = 0
        self.lengths: list[int] = []
        self.sources: list[int] = []
        self.keys: list[int] = []  # mixing order: a hash of (seed, id)

    def add(self, ids: list[int], source: int, key: int) -> None:
        self.file.write(np.asarray(ids, dtype=np.int32).tobytes())
        self.lengths.append(len(ids))
        self.sources.append(source)
        self.keys.append(key)
        self.size += len(ids)

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(starts, lengths, sources, keys) arrays of every document in the stream."""
        self.file.close()
        lengths = np.asarray(self.lengths, dtype=np.int64)
        return (
            np.cumsum(lengths) - lengths,
            lengths,
            np.asarray(self.sources, dtype=np.int64),
            np.asarray(self.keys, dtype=np.uint64),
        )

    def tokens(self) -> np.ndarray:
        if self.size == 0:
            return np.zeros(0, dtype=np.int32)
        return np.memmap(self.path, dtype=np.int32, mode="r", shape=(self.size,))


def _doc_key(doc_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"mix\0{seed}\0{doc_id}".encode(), digest_size=8).digest(), "big")


def _tokenize(
    sources: list[list[Path]],
    tokenizer: AnyTokenizer,
    train: _TokenSink,
    val: _TokenSink | None,
    val_fraction: float,
    seed: int,
    progress: bool,
) -> int:
    """Encode every document into its split's stream; return the number of empty documents skipped."""
    empty = 0
    num_rows = sum(open_parquet(f).metadata.num_rows for files in sources for f in files)
    with tqdm(
        total=num_rows, unit="doc", desc="tokenize", file=sys.stderr, disable=None if progress else True
    ) as bar:
        for source, files in enumerate(sources):
            for path in files:
                for doc_ids, texts in _read_documents(path):
                    kept = [(i, t) for i, t in zip(doc_ids, texts, strict=True) if t.strip()]
                    empty += len(texts) - len(kept)
                    encoded = tokenizer.encode_batch(
                        [t for _, t in kept], bos=True, eos=True, num_threads=ENCODE_THREADS
                    )
                    for (doc_id, _), ids in zip(kept, encoded, strict=True):
                        in_val = val is not None and is_val_document(doc_id, val_fraction, seed)
                        (val if in_val else train).add(ids, source, _doc_key(doc_id, seed))
                    bar.update(len(texts))
    return empty


def mix_selection(
    lengths: np.ndarray, sources: np.ndarray, keys: np.ndarray, weights: list[float]
) -> tuple[np.ndarray, list[dict]]:
    """Documents to keep so that source s supplies weights[s] of the tokens, none repeated.

    The source with the fewest tokens per unit of weight is used whole and sets the total; every
    other source gives its documents in a seeded hash order until its share is reached. Returns a
    boolean mask and, per source, what was available and what was taken.
    """
    w = np.asarray(weights, dtype=np.float64)
    available = np.bincount(sources, weights=lengths, minlength=len(w))
    usable = w > 0
    if not usable.any():
        raise ValueError("mixing weights must include a positive one")
    if (available[usable] == 0).any():
        empty = [i for i in np.flatnonzero(usable) if available[i] == 0]
        raise ValueError(f"source(s) {empty} have a positive weight but no tokens")
    total = float(np.min(available[usable] / w[usable]) * w[usable].sum())
    keep = np.zeros(len(lengths), dtype=bool)
    info = []
    for s in range(len(w)):
        target = total * w[s] / w.sum()
        idx = np.flatnonzero(sources == s)
        idx = idx[np.argsort(keys[idx], kind="stable")]
        cum = np.cumsum(lengths[idx])
        n = int(np.searchsorted(cum, target))  # documents that stay below the target
        if n < len(idx) and cum[n] - target <= target - (cum[n - 1] if n else 0):
            n += 1  # the next document lands nearer the target than stopping short
        chosen = idx[:n]
        keep[chosen] = True
        info.append({"weight": float(w[s]), "available_tokens": int(available[s]), "documents": len(chosen)})
    taken = np.bincount(sources[keep], weights=lengths[keep], minlength=len(w))
    for s, entry in enumerate(info):
        entry["tokens"] = int(taken[s])
        entry["fraction"] = round(float(taken[s] / taken.sum()), 6) if taken.sum() else 0.0
    return keep, info


def _write_split(
    sink: _TokenSink,
    directory: Path,
    header: dict,
    *,
    strategy: str,
    shuffle: bool,
    weights: list[float] | None,
    pad_id: int,
    rows_per_shard: int,
    seed: int,
) -> dict:
    """Pack one split's stream into rows, shuffle them, write the shards and the manifest."""
    starts, lengths, sources, keys = sink.finish()
    capacity = header["seq_len"] + 1
    mix = None
    if weights is not None:
        keep, mix = mix_selection(lengths, sources, keys, weights)
        starts, lengths = starts[keep], lengths[keep]
    if strategy == "best_fit":
        rows = best_fit_rows(starts, lengths, capacity)
    else:
        rows = concat_chunks(starts, lengths, capacity)
    order = np.random.default_rng([seed, 1]).permutation(len(rows)) if shuffle else np.arange(len(rows))
    tokens = sink.tokens()
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for first in range(0, len(rows), rows_per_shard):
        chunk = order[first : first + rows_per_shard]
        built = [assemble(tokens, rows[i], capacity, pad_id) for i in chunk]
        flat = pa.array(np.concatenate([b[0] for b in built]))
        offsets = pa.array(np.arange(0, (len(built) + 1) * capacity, capacity, dtype=np.int32))
        table = pa.Table.from_arrays(
            [
                pa.ListArray.from_arrays(offsets, flat),
                pa.array([b[1] for b in built], type=pa.list_(pa.int32())),
            ],
            schema=SHARD_SCHEMA,
        )
        name = f"part-{len(files):05d}.parquet"
        pq.write_table(table, directory / name, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        files.append(name)
    del tokens
    total = int(lengths.sum())
    manifest = {
        **header,
        "strategy": strategy,
        "shuffled": shuffle,
        "num_sequences": len(rows),
        "total_tokens": total,
        "padding_tokens": len(rows) * capacity - total,
        "padding_fraction": round((len(rows) * capacity - total) / (len(rows) * capacity), 6)
        if rows
        else 0.0,
        "num_documents": len(lengths),
        "split_documents": int((lengths > capacity).sum()),  # longer than a row: cut into pieces
        "truncations": 0,  # no token is ever dropped
        "mix": mix,
        "files": files,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def pack(
    inputs: list[Path],
    output: Path,
    tokenizer: AnyTokenizer,
    seq_len: int,
    *,
    strategy: str = PackStage.strategy,
    shuffle: bool = PackStage.shuffle,
    weights: list[float] | None = None,
    val_fraction: float = PackStage.val_fraction,
    rows_per_shard: int = PackStage.rows_per_shard,
    seed: int = PackStage.seed,
    progress: bool = True,
    allow_incomplete: bool = False,
) -> dict:
    """Tokenize the `text` of Parquet inputs and pack it into rows of seq_len + 1 tokens; return the manifest.

    Each entry of `inputs` is one source (a file, directory or glob); with `weights` (one per
    source) the sources are mixed in those token proportions (`mix_selection`). `strategy` is
    "best_fit" (no document that fits a row is split) or "concat" (concatenate and chunk); rows are
    shuffled with `seed` unless `shuffle` is False. Documents with no non-whitespace text are
    skipped (`empty_documents`); `seed` also salts the validation hash. The result is built in a
    staging directory and renamed into place, so a failed or killed run leaves the previous output
    (or none) and never a partial one.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len={seq_len} must be >= 1")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction} must be in [0, 1)")
    if not 1 <= rows_per_shard * (seq_len + 1) < 2**31:  # list<int32> offsets address one shard's tokens
        raise ValueError(f"rows_per_shard={rows_per_shard} must be >= 1 and hold fewer than 2**31 tokens")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if weights is not None and (len(weights) != len(inputs) or any(w < 0 for w in weights)):
        raise ValueError(f"weights {weights} must give one non-negative weight per input ({len(inputs)})")
    check_io([*inputs, tokenizer.path], [output], allow_incomplete)  # data_pipeline/guard.py
    output = Path(output).resolve()  # a name to derive the staging dir from, even for "."
    sources = [list_parquet(path) for path in inputs]
    files = [f for group in sources for f in group]
    _check_output(output)

    staging = output.with_name(output.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)  # left over from a killed run
    staging.mkdir(parents=True)
    train: _TokenSink | None = None
    val: _TokenSink | None = None
    try:
        train = _TokenSink(staging / ".tokens-train.bin")
        val = _TokenSink(staging / ".tokens-val.bin") if val_fraction else None
        empty = _tokenize(sources, tokenizer, train, val, val_fraction, seed, progress)
        if len(train.lengths) + (len(val.lengths) if val else 0) == 0:
            raise ValueError(f"no non-empty documents in {[str(p) for p in inputs]}")
        header = {
            "format": PACKED_FORMAT,
            "tokenizer": {
                "kind": tokenizer.kind,
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
        options = {
            "strategy": strategy,
            "shuffle": shuffle,
            "weights": weights,
            "pad_id": tokenizer.pad_id,
            "rows_per_shard": rows_per_shard,
            "seed": seed,
        }
        val_summary = None
        if val is not None:
            val_manifest = _write_split(val, staging / VAL_DIR, {**header, "split": "val"}, **options)
            val_summary = {k: val_manifest[k] for k in SUMMARY_KEYS}
        header = {**header, "split": "train", "empty_documents": empty, "val": val_summary}
        manifest = _write_split(train, staging, header, **options)
        for sink in (train, val):
            if sink is not None:
                sink.path.unlink()
        _replace_dir(staging, output)
    except BaseException as e:
        _discard(staging, train, val)
        if isinstance(e, OSError) and e.errno in _OUTPUT_ERRNOS:
            raise _naming_output(e, output) from None
        raise
    return manifest


def pack_chunks(
    inputs: list[Path],
    output: Path,
    tokenizer: AnyTokenizer,
    seq_len: int,
    val_fraction: float = PackStage.val_fraction,
    rows_per_shard: int = PackStage.rows_per_shard,
    seed: int = PackStage.seed,
) -> dict:
    """Concatenate-and-chunk in input order, unshuffled (the GPT-style baseline of `pack`)."""
    return pack(
        inputs,
        output,
        tokenizer,
        seq_len,
        strategy="concat",
        shuffle=False,
        val_fraction=val_fraction,
        rows_per_shard=rows_per_shard,
        seed=seed,
    )
