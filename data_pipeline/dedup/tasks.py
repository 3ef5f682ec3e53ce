"""The units of work of a dedup run, each a picklable task an executor runs once per unit.

A run has four kinds of stage (see `data_pipeline.dedup.run` for the plan and order):

- `HashTask`, per input shard: each document's group keys -- its LSH band hashes (minhash), its
  normalised-text hash (exact) or its canonical-URL hash (url) -- with its document key, written to
  `buckets/<partition>/<shard>.parquet`, the partition chosen by hash. Memory is one batch plus a
  bounded buffer; everything else is on disk.
- `BucketTask`, per partition: all rows of one partition meet; equal hashes are linked. minhash:
  star edges of each bucket, then connected components (`clusters.connected_components`) into a
  forest (node -> smallest key of its component), whose edges go to the connected-components
  rounds (`cc_tasks`: K partitions, `cc-<i>` stages, then `components`); exact/url: each group
  maps to its keeper (the smallest (order, key): first document, or newest version), and as groups
  never span partitions these are final: `groups/labels/<partition>.npy`, `groups/clusters/`.
- `DedupMark`, a filter step run by `shard.process_shard` per input shard: reads that shard's slice
  of the final labels and drops (or only annotates) every document that is not its cluster's keeper.

Every task writes its files under temp names and renames them, then a completion marker, so any
unit can be killed and re-run and gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_pipeline.config import DEDUP_METHODS, DedupStage, defaults
from data_pipeline.dedup.cc_tasks import GROUPS, Results, find_results, read_labels, send_edges, write_results
from data_pipeline.dedup.clusters import (
    candidate_edges,
    connected_components,
    doc_key,
    partition_of,
    verified_edges,
)
from data_pipeline.dedup.exact import keeper_order, text_hashes, url_hashes
from data_pipeline.dedup.minhash import (
    MinHashConfig,
    band_hashes,
    empty_rows,
    signatures,
    sketch,
    sketch_jaccard,
)
from data_pipeline.dedup.stars import cluster_rows
from data_pipeline.document import Doc
from data_pipeline.filters.base import Step
from data_pipeline.semantic.config import SemanticConfig
from data_pipeline.shard import (
    Interrupted,
    ShardError,
    ShardStats,
    batch_texts,
    open_shard,
    read_batches,
    shard_task,
)

SEMANTIC_ROWS_PER_DOC = 50
# Rows buffered over all partitions before they are written out as row groups (16 bytes each).
_FLUSH_ROWS = 1 << 21


@dataclasses.dataclass(frozen=True)
class DedupConfig:
    """What is deduplicated and how; every task of a run must use the same values."""

    method: str = DedupStage.method
    """minhash: near duplicates (LSH over MinHash); exact: equal normalised text; url: same URL."""
    minhash: MinHashConfig = dataclasses.field(default_factory=MinHashConfig)
    """Shingles, bands x rows and normalisation (also the normalisation of exact dedup)."""
    normalize: bool = DedupStage.normalize
    """exact: compare texts after the MinHash normalisation (False: byte-identical texts only)."""
    url_column: str = DedupStage.url_column
    """url: the column holding each document's URL."""
    timestamp_column: str | None = DedupStage.timestamp_column
    """url: keep the version with the newest value here; None keeps the first document instead."""
    verify_threshold: float | None = DedupStage.verify_threshold
    """minhash: link an LSH candidate pair only if its estimated Jaccard (4-bit sketch) reaches this.

    Banding alone (datatrove, FineWeb) also pairs ~5% of documents at Jaccard 0.5 and ~36% at 0.65
    with 14x8. The estimate's standard error is ~0.04, so at 0.75 the check passes ~90% of pairs at
    0.8 and ~99.8% at 0.85, ~10% at 0.69 and ~0.1% at 0.6. None: every candidate is a duplicate, as
    in datatrove."""
    annotate: bool = DedupStage.annotate
    """Keep every document and add `<method>_cluster` / `<method>_duplicate` columns instead of removing."""
    semantic: SemanticConfig = dataclasses.field(default_factory=SemanticConfig)
    """semantic: the encoder, eps, keep policy and k-means settings."""

    def __post_init__(self) -> None:
        if self.method not in DEDUP_METHODS:
            raise ValueError(f"dedup method {self.method!r}: expected one of {', '.join(DEDUP_METHODS)}")
        v = self.verify_threshold
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1):
            raise ValueError(f"verify_threshold={v!r}: expected a Jaccard similarity in (0, 1] or None")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> DedupConfig:
        """The config of a dedup stage's options (`DedupStage`, data_pipeline/config.py), as a recipe
        stage or `andes-data dedup` gives them: both build it here, so they cannot disagree."""
        o = {**defaults(DedupStage), **options}
        minhash = MinHashConfig(ngram_size=o["ngram_size"], bands=o["bands"], rows=o["rows"], seed=o["seed"])
        semantic = SemanticConfig()
        if o["method"] == "semantic":
            semantic = SemanticConfig(
                encoder=_encoder_dir(o["encoder"]),
                max_tokens=o["max_tokens"],
                embed_dtype=o["embed_dtype"],
                eps=o["eps"],
                eps_sweep=tuple(float(e) for e in o["eps_sweep"] or ()),
                clusters=o["clusters"],
                docs_per_cluster=o["docs_per_cluster"],
                keep=o["keep"],
                seed=o["seed"],
                kmeans_sample=o["kmeans_sample"],
                kmeans_iterations=o["kmeans_iterations"],
                kmeans_backend=o["kmeans_backend"],
                rounds=o["rounds"],
            )
        return cls(
            method=o["method"],
            minhash=minhash,
            normalize=o["normalize"],
            url_column=o["url_column"],
            timestamp_column=o["timestamp_column"] or None,
            verify_threshold=o["verify_threshold"],
            annotate=o["annotate"],
            semantic=semantic,
        )

    @property
    def rows_per_doc(self) -> int:
        """Bucket rows (16 bytes) one document adds at most (sizes the partitions); semantic: its
        assignment row, a 384-dim float16 embedding with key, cluster and distance, as 50 rows."""
        return {"minhash": self.minhash.bands, "semantic": SEMANTIC_ROWS_PER_DOC}.get(self.method, 1)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _encoder_dir(path: str | None) -> str:
    """The encoder directory, resolved (None or '': the shipped all-MiniLM-L6-v2)."""
    if not path:
        from data_pipeline.semantic.config import default_encoder_dir

        return str(default_encoder_dir())
    return str(Path(path).expanduser().resolve())


def bucket_schema(cfg: DedupConfig) -> pa.Schema:
    method = cfg.method
    fields = [("hash", pa.uint64())]
    if method == "minhash" and cfg.verify_threshold is not None:
        fields.append(("sketch", pa.binary((cfg.minhash.num_perm + 1) // 2)))
    if method != "minhash":
        fields.append(("hash2", pa.uint64()))  # exact/url hashes are 128-bit
    if method == "url":
        fields.append(("order", pa.int64()))
    return pa.schema([*fields, ("key", pa.uint64())])


def binary_rows(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-size binary column as (n, width) uint8 rows, without copying where it is one chunk."""
    column = column.combine_chunks()
    width = column.type.byte_width
    data = np.frombuffer(column.buffers()[1], dtype=np.uint8)
    return data[column.offset * width : (column.offset + len(column)) * width].reshape(len(column), width)


def _arrow(values: np.ndarray, dtype: pa.DataType) -> pa.Array:
    if pa.types.is_fixed_size_binary(dtype):  # (n, width) uint8 rows
        data = np.ascontiguousarray(values, dtype=np.uint8)
        return pa.FixedSizeBinaryArray.from_buffers(dtype, len(data), [None, pa.py_buffer(data.tobytes())])
    return pa.array(values, type=dtype)


class PartitionWriters:
    """Buffers one shard's rows and writes them as `<root>/<p>/<shard>.parquet` per partition.

    A row's partition is `part_of(columns)` (default: its band hash's, `partition_of`)."""

    def __init__(
        self,
        root: Path,
        stem: str,
        partitions: int,
        schema: pa.Schema,
        part_of: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None,
        flush_rows: int = _FLUSH_ROWS,
    ) -> None:
        self.root, self.stem, self.partitions, self.schema = root, stem, partitions, schema
        self.flush_rows = flush_rows
        self.part_of = part_of or (lambda columns: partition_of(columns["hash"], partitions))
        self.buffer: list[dict[str, np.ndarray]] = []
        self.buffered = 0
        self.writers: dict[int, tuple[pq.ParquetWriter, Path, Path]] = {}

    def target(self, p: int) -> Path:
        return self.root / f"{p:05d}" / f"{self.stem}.parquet"

    def clean(self) -> None:
        """Remove temp files a killed run left for this shard (finished files are simply replaced)."""
        pattern = f"{glob.escape(self.stem)}.parquet.*.tmp"
        for path in self.root.glob(f"[0-9][0-9][0-9][0-9][0-9]/{pattern}"):
            path.unlink(missing_ok=True)

    def add(self, columns: dict[str, np.ndarray]) -> None:
        if len(columns["key"]):
            self.buffer.append(columns)
            self.buffered += len(columns["key"])
        if self.buffered >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        merged = {name: np.concatenate([b[name] for b in self.buffer]) for name in self.schema.names}
        self.buffer, self.buffered = [], 0
        part = self.part_of(merged)
        order = np.argsort(part, kind="stable")
        part = part[order]
        bounds = np.searchsorted(part, np.arange(self.partitions + 1))
        for p in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[p] : bounds[p + 1]]
            table = pa.table(
                {
                    name: _arrow(merged[name][rows], self.schema.field(name).type)
                    for name in self.schema.names
                },
                schema=self.schema,
            )
            if p not in self.writers:
                final = self.target(int(p))
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp = final.with_name(f"{final.name}.{os.getpid()}.tmp")
                self.writers[p] = (pq.ParquetWriter(tmp, self.schema), tmp, final)
            self.writers[p][0].write_table(table)

    def commit(self) -> None:
        self.flush()
        for writer, tmp, final in self.writers.values():
            writer.close()
            os.replace(tmp, final)
        self.writers = {}

    def abort(self) -> None:
        for writer, tmp, _ in self.writers.values():
            writer.close()
            tmp.unlink(missing_ok=True)
        self.writers = {}


@dataclasses.dataclass
class HashTask:
    """Stage `hash`: one input shard -> its bucket rows in every partition."""

    cfg: DedupConfig
    shard_index: dict[str, int]  # input shard name -> index in the run's plan (high half of keys)
    work: Path
    partitions: int
    batch_rows: int
    skip_bad: bool
    out_dir: Path  # markers

    def setup(self) -> None:
        pass

    def _columns(self, shard: Path, batch: pa.RecordBatch, row: int) -> dict[str, np.ndarray]:
        n = batch.num_rows
        keys = doc_key(self.shard_index[shard.name], np.arange(row, row + n))
        method = self.cfg.method
        if method == "url":
            if self.cfg.url_column not in batch.schema.names:
                raise ShardError(f"{shard}: column '{self.cfg.url_column}' missing (url dedup groups by it)")
            hi, lo, ok = url_hashes(batch.column(self.cfg.url_column).to_pylist())
            ts = self.cfg.timestamp_column
            if ts is None:
                order = np.zeros(n, dtype=np.int64)
            elif ts not in batch.schema.names:
                raise ShardError(
                    f"{shard}: column '{ts}' missing (url dedup keeps the newest version; "
                    "--timestamp-column '' keeps the first instead)"
                )
            else:
                try:
                    order = keeper_order(batch.column(ts), f"{shard}: rows {row}-{row + n - 1}")
                except ValueError as e:
                    raise ShardError(str(e)) from None
            return {"hash": hi[ok], "hash2": lo[ok], "order": order[ok], "key": keys[ok]}
        texts = batch_texts(shard, batch, row, self.skip_bad)
        valid = np.array([t is not None for t in texts], dtype=bool)
        if method == "exact":
            hi, lo, ok = text_hashes(texts, self.cfg.minhash if self.cfg.normalize else None)
            ok &= valid
            return {"hash": hi[ok], "hash2": lo[ok], "key": keys[ok]}
        mh = self.cfg.minhash
        sig = signatures([t or "" for t in texts], mh)
        ok = valid & ~empty_rows(sig)  # wordless documents would all share every band
        bands = band_hashes(sig[ok], mh.bands, mh.rows)
        columns = {"hash": bands.ravel(), "key": np.repeat(keys[ok], mh.bands)}
        if self.cfg.verify_threshold is not None:
            columns["sketch"] = np.repeat(sketch(sig[ok]), mh.bands, axis=0)
        return columns

    def __call__(
        self,
        shard: Path,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ShardStats:
        with shard_task(self.out_dir, shard) as stats:
            schema = bucket_schema(self.cfg)
            writers = PartitionWriters(self.work / "buckets", shard.stem, self.partitions, schema)
            writers.clean()
            try:
                file = open_shard(shard)
                for row, batch in read_batches(shard, file, self.batch_rows):
                    if should_stop():
                        raise Interrupted(str(shard))
                    columns = self._columns(shard, batch, row)
                    writers.add(columns)
                    stats.docs_in += batch.num_rows
                    stats.docs_out += len(np.unique(columns["key"]))  # documents with a group key
                    progress(batch.num_rows)
                writers.commit()
            except ShardError as e:
                writers.abort()
                if not self.skip_bad:
                    raise
                # The remove stage meets the same error and reports the shard as skipped.
                stats.dropped = {"invalid:shard": 1}
                stats.outputs = [str(e)]
            except BaseException:
                writers.abort()
                raise
        return stats


def _group_keepers(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(node, keeper) of every document in a group of equal 128-bit hashes with 2+ members."""
    h1 = table.column("hash").to_numpy()
    h2 = table.column("hash2").to_numpy()
    key = table.column("key").to_numpy()
    has_order = "order" in table.column_names
    order = table.column("order").to_numpy() if has_order else np.zeros(len(key), np.int64)
    if len(key) < 2:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    idx = np.lexsort((key, order, h2, h1))
    h1, h2, key = h1[idx], h2[idx], key[idx]
    start = np.ones(len(key), dtype=bool)
    start[1:] = (h1[1:] != h1[:-1]) | (h2[1:] != h2[:-1])
    group = np.cumsum(start) - 1
    sizes = np.bincount(group)
    keeper = key[np.flatnonzero(start)][group]
    grouped = sizes[group] > 1
    return key[grouped].astype(np.uint64), keeper[grouped].astype(np.uint64)


@dataclasses.dataclass
class BucketTask:
    """Stage `buckets`: one partition's rows -> its forest's edges (minhash) or its groups (exact, url)."""

    cfg: DedupConfig
    work: Path
    cc_parts: int  # minhash: connected-components partitions (K)
    out_dir: Path  # markers

    def setup(self) -> None:
        pass

    def _edges(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        hashes, keys = table.column("hash").to_numpy(), table.column("key").to_numpy()
        threshold = self.cfg.verify_threshold
        if threshold is None:
            return candidate_edges(hashes, keys)
        sketches = binary_rows(table.column("sketch"))
        num_perm = self.cfg.minhash.num_perm
        return verified_edges(
            hashes, keys, lambda a, b: sketch_jaccard(sketches[a], sketches[b], num_perm) >= threshold
        )

    def __call__(
        self,
        unit: Path,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ShardStats:
        with shard_task(self.out_dir, unit) as stats:
            files = sorted((self.work / "buckets" / unit.name).glob("*.parquet"))
            schema = bucket_schema(self.cfg)
            tables = [pq.read_table(f, schema=schema) for f in files]
            table = pa.concat_tables(tables) if tables else schema.empty_table()
            if should_stop():
                raise Interrupted(unit.name)
            part = int(unit.name)
            if self.cfg.method == "minhash":
                nodes, roots = connected_components(*self._edges(table))
                linked = nodes != roots  # the forest's edges: same components, fewer rows
                # Step 0 is a large-star (K > 1), which takes each edge at both ends.
                send_edges(self.work, 0, part, nodes[linked], roots[linked], self.cc_parts, both_ends=True)
            else:
                nodes, roots = _group_keepers(table)
                write_results(self.work / GROUPS, part, nodes, roots, cluster_rows(nodes, roots))
            progress(len(files))
            stats.docs_in, stats.docs_out = table.num_rows, len(nodes)
        return stats


_REASONS = {"minhash": "duplicate", "exact": "duplicate", "url": "older_version"}


@dataclasses.dataclass
class DedupMark(Step):
    """Stage `remove` as a filter step: drops (or annotates) documents that are not their cluster's keeper.

    `<method>_cluster` is the keeper's key, `(shard index << 32) | row`, as int64 (null outside any
    cluster); `<method>_duplicate` says whether the document would be removed.
    """

    name: ClassVar[str] = "dedup"
    method: str = "minhash"
    results: Results = dataclasses.field(default_factory=list)  # `cc_tasks.find_results` picks one
    shard_index: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = self.method  # stats and drop reasons read "minhash:duplicate" etc.
        self._nodes = self._roots = np.zeros(0, np.uint64)
        self._base = 0

    def columns(self) -> dict[str, pa.DataType]:
        return {f"{self.method}_cluster": pa.int64(), f"{self.method}_duplicate": pa.bool_()}

    def begin_shard(self, shard: Path) -> None:
        index = self.shard_index[shard.name]
        self._base = index << 32
        self._nodes, self._roots = read_labels(*find_results(self.results), self._base, (index + 1) << 32)

    def process(self, docs: list[Doc]) -> None:
        if not docs:
            return
        keys = np.array([self._base + d.row for d in docs], dtype=np.uint64)
        pos = np.minimum(np.searchsorted(self._nodes, keys), max(len(self._nodes) - 1, 0))
        hit = self._nodes[pos] == keys if len(self._nodes) else np.zeros(len(keys), dtype=bool)
        cluster, duplicate = f"{self.method}_cluster", f"{self.method}_duplicate"
        for doc, found, p, key in zip(docs, hit.tolist(), pos.tolist(), keys.tolist(), strict=True):
            root = int(self._roots[p]) if found else None
            doc.annotations[cluster] = root
            doc.annotations[duplicate] = root is not None and root != key
            if doc.annotations[duplicate] and self.drop and doc.drop_reason is None:
                doc.drop_reason = f"{self.method}:{_REASONS[self.method]}"
