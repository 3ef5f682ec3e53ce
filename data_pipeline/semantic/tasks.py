"""The units of work of a semantic dedup run (`andes-data dedup --method semantic`).

Stages, each a picklable task an executor runs once per unit (order and plan: `semantic/stages.py`):

- `EmbedTask`, per input shard: every document's embedding, `OUT/.dedup/embeddings/<shard>.parquet`
  (`id`, float16 `embedding`; `embed.py`), kept for later stages and for users (`classify` reuses it).
- `FitTask`, one unit: spherical k-means (`kmeans.py`) on a seeded sample of all embeddings ->
  `fit/centroids.npy` and `fit/kmeans.json`.
- `AssignTask`, per input shard: each embedding's nearest centroid and distance, written with the
  document key and the embedding into `clusters/<partition>/<shard>.parquet`; cluster c goes to
  partition c mod P, so a partition holds whole clusters.
- `ClusterTask`, per partition: each of its clusters is deduplicated by `cluster.dedup_cluster_sweep`
  (block by block, never an n x n matrix) -> `decisions/<partition>.parquet`: per document its
  cluster, whether it is removed, its highest cosine to an earlier kept member and that member's key,
  sorted by key, with the partition's summary (cluster sizes, eps sweep, example pairs) in the file's
  key-value metadata.
- `SemanticMark`, a filter step of the remove stage (per input shard): reads that shard's key range
  of every decisions file and drops (or only annotates) the removed documents.

Every output is written under a temp name and renamed, then the unit's marker, as for MinHash
(`dedup/tasks.py`), so any unit can be killed and re-run and gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_pipeline.dedup.clusters import doc_key
from data_pipeline.document import Doc
from data_pipeline.filters.base import Step
from data_pipeline.io import atomic_path, atomic_write_parquet, atomic_write_text
from data_pipeline.semantic.config import SemanticConfig
from data_pipeline.semantic.summary import partition_summary
from data_pipeline.shard import (
    Interrupted,
    ShardError,
    ShardStats,
    batch_texts,
    made_ids,
    open_shard,
    read_batches,
    shard_task,
)

CENTROIDS = "fit/centroids.npy"
KMEANS_INFO = "fit/kmeans.json"
EMBEDDINGS_DIR = "embeddings"
SUMMARY_KEY = b"andes.semantic"
DECISION_SCHEMA = pa.schema(
    [
        ("key", pa.uint64()),
        ("cluster", pa.int64()),
        ("removed", pa.bool_()),
        ("max_sim", pa.float32()),  # null: no earlier kept member in its cluster
        ("duplicate_of", pa.uint64()),  # key of that member; null likewise
    ]
)
_DECISION_ROW_GROUP = 1 << 16  # the remove stage reads one shard's key range, pruned by row group
_READ_ROWS = 1 << 16  # embeddings read per batch by fit
_FLUSH_ROWS = 1 << 16  # assignment rows buffered before writing (~50 MB at 384 dims)


def embeddings_path(work: Path, shard: Path) -> Path:
    return work / EMBEDDINGS_DIR / f"{shard.stem}.parquet"


def assignment_schema(dim: int) -> pa.Schema:
    """Rows of `clusters/<p>/<shard>.parquet`: the key, cluster, distance and raw float16 embedding."""
    return pa.schema(
        [
            ("key", pa.uint64()),
            ("cluster", pa.int64()),
            ("dist", pa.float32()),
            ("embedding", pa.binary(2 * dim)),
        ]
    )


@dataclasses.dataclass
class EmbedTask:
    """Stage `embed`: one input shard -> its embeddings (null where the text is empty or bad)."""

    cfg: SemanticConfig
    work: Path
    batch_rows: int
    skip_bad: bool
    threads: int | None
    out_dir: Path  # markers

    def setup(self) -> None:
        from data_pipeline.semantic.encoder import load_encoder

        self._encoder = load_encoder(
            self.cfg.encoder, max_tokens=self.cfg.max_tokens, threads=self.threads, dtype=self.cfg.embed_dtype
        )

    def _write(self, shard: Path, stats: ShardStats, should_stop, progress) -> None:
        from data_pipeline.semantic.embed import embed_texts, embedding_schema, embeddings_table
        from data_pipeline.semantic.encoder import encoder_metadata

        encoder = self._encoder
        schema = embedding_schema(encoder.dim, encoder_metadata(encoder))
        file = open_shard(shard)
        has_id = "id" in file.schema_arrow.names
        with (
            atomic_path(embeddings_path(self.work, shard)) as tmp,
            pq.ParquetWriter(tmp, schema, compression="zstd") as writer,
        ):
            for row, batch in read_batches(shard, file, self.batch_rows):
                if should_stop():
                    raise Interrupted(str(shard))
                texts = batch_texts(shard, batch, row, self.skip_bad)
                try:
                    vectors, valid = embed_texts(encoder, texts, where=f"{shard}: ", first_row=row)
                    ids = (
                        batch.column("id").cast(pa.string()).to_pylist()
                        if has_id
                        else made_ids(shard.stem, row, len(texts))
                    )
                except (ValueError, pa.ArrowException) as e:  # a text the encoder cannot take; odd ids
                    raise ShardError(str(e)) from None
                writer.write_table(embeddings_table(ids, vectors, schema, valid))
                stats.docs_in += batch.num_rows
                stats.docs_out += int(valid.sum())
                progress(batch.num_rows)

    def __call__(
        self,
        shard: Path,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ShardStats:
        with shard_task(self.out_dir, shard) as stats:
            try:
                self._write(shard, stats, should_stop, progress)
            except ShardError as e:
                if not self.skip_bad:
                    raise
                # Later stages find no embeddings for it; the remove stage reports it as skipped.
                stats.dropped = {"invalid:shard": 1}
                stats.outputs = [str(e)]
        return stats


def iter_embeddings(path: Path, batch_rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows that have an embedding, their float16 vectors (n, dim)) of an embeddings file, a batch
    at a time; rows count from the file's first row."""
    file = pq.ParquetFile(path)
    dim = file.schema_arrow.field("embedding").type.list_size
    start = 0
    for batch in file.iter_batches(batch_size=batch_rows, columns=["embedding"]):
        column = batch.column(0)
        valid = np.asarray(column.is_valid())
        flat = column.flatten().to_numpy(zero_copy_only=False)  # null rows have no values here
        yield start + np.flatnonzero(valid), flat.astype(np.float16, copy=False).reshape(-1, dim)
        start += batch.num_rows


@dataclasses.dataclass
class FitTask:
    """Stage `fit`: k-means on a seeded sample of the corpus' embeddings -> the centroids."""

    cfg: SemanticConfig
    work: Path
    shards: list[Path]  # all input shards in plan order (their embeddings files, where they exist)
    clusters: int
    threads: int | None
    out_dir: Path  # markers

    def setup(self) -> None:
        pass

    def _sample(self, files: list[Path]) -> np.ndarray:
        """The sampled rows over all documents that have an embedding, in corpus order."""
        from data_pipeline.semantic.kmeans import sample_indices

        counts = [pq.ParquetFile(f).metadata.num_rows for f in files]
        total = sum(counts)
        size = self.cfg.sample_size(self.clusters)
        picks = sample_indices(total, size, self.cfg.seed)
        out, start = [], 0
        for f, n in zip(files, counts, strict=True):
            mine = picks[(picks >= start) & (picks < start + n)] - start
            start += n
            if len(mine):
                for rows, vectors in iter_embeddings(f, _READ_ROWS):
                    out.append(vectors[np.isin(rows, mine)])
        dim = pq.ParquetFile(files[0]).schema_arrow.field("embedding").type.list_size if files else 0
        return np.concatenate(out) if out else np.zeros((0, dim), np.float16)

    def __call__(
        self,
        unit: Path,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ShardStats:
        from data_pipeline.semantic.embed import check_same_encoder
        from data_pipeline.semantic.kmeans import spherical_kmeans

        with shard_task(self.out_dir, unit) as stats:
            files = [p for s in self.shards if (p := embeddings_path(self.work, s)).is_file()]
            encoder = check_same_encoder(files)
            sample = self._sample(files)
            if should_stop():
                raise Interrupted(unit.name)
            k = max(1, min(self.clusters, len(sample)))
            if len(sample):
                km = spherical_kmeans(
                    sample.astype(np.float32),
                    k,
                    niter=self.cfg.kmeans_iterations,
                    seed=self.cfg.seed,
                    backend=self.cfg.kmeans_backend,
                    faiss_threads=self.threads,
                )
                centroids, inertia, iterations = km.centroids, km.inertia, km.iterations
            else:  # no document has text: one arbitrary centroid, nothing is ever assigned to it
                centroids, inertia, iterations = np.zeros((1, sample.shape[1] or 1), np.float32), 0.0, 0
            with atomic_path(self.work / CENTROIDS) as tmp, open(tmp, "wb") as f:
                np.save(f, centroids.astype(np.float32))
            info = {
                "clusters": int(len(centroids)),
                "sample": int(len(sample)),
                "inertia": round(float(inertia), 4),
                "iterations": int(iterations),
                "backend": self.cfg.kmeans_backend,
                "encoder": encoder,
            }
            atomic_write_text(self.work / KMEANS_INFO, json.dumps(info, indent=1, sort_keys=True) + "\n")
            progress(len(sample))
            stats.docs_in, stats.docs_out = len(sample), len(centroids)
        return stats


@dataclasses.dataclass
class AssignTask:
    """Stage `assign`: one shard's embeddings -> nearest centroid, written by cluster partition."""

    work: Path
    shard_index: dict[str, int]
    partitions: int
    batch_rows: int
    out_dir: Path  # markers

    def setup(self) -> None:
        pass

    def __call__(
        self,
        shard: Path,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ShardStats:
        from data_pipeline.dedup.tasks import PartitionWriters
        from data_pipeline.semantic.kmeans import assign

        with shard_task(self.out_dir, shard) as stats:
            path = embeddings_path(self.work, shard)
            if not path.is_file():  # the embed stage skipped it as bad input (--on-bad-input skip)
                return stats
            centroids = np.load(self.work / CENTROIDS)
            dim = pq.ParquetFile(path).schema_arrow.field("embedding").type.list_size
            writers = PartitionWriters(
                self.work / "clusters",
                shard.stem,
                self.partitions,
                assignment_schema(dim),
                part_of=lambda c: (c["cluster"] % self.partitions).astype(np.int64),
                flush_rows=_FLUSH_ROWS,
            )
            writers.clean()
            index = self.shard_index[shard.name]
            try:
                for rows, vectors in iter_embeddings(path, self.batch_rows):
                    if should_stop():
                        raise Interrupted(str(shard))
                    labels, dists = assign(vectors, centroids)
                    raw = np.ascontiguousarray(vectors).view(np.uint8)
                    writers.add(
                        {"key": doc_key(index, rows), "cluster": labels, "dist": dists, "embedding": raw}
                    )
                    stats.docs_in += len(rows)
                    progress(len(rows))
                writers.commit()
            except BaseException:
                writers.abort()
                raise
            stats.docs_out = stats.docs_in
        return stats


def _read_partition(work: Path, unit: Path) -> pa.Table:
    files = sorted((work / "clusters" / unit.name).glob("*.parquet"))
    tables = [pq.read_table(f) for f in files]
    if not tables:
        return assignment_schema(1).empty_table()
    return pa.concat_tables(tables).combine_chunks()


@dataclasses.dataclass
class ClusterTask:
    """Stage `cluster`: every cluster of one partition -> which members are removed."""

    cfg: SemanticConfig
    work: Path
    out_dir: Path  # markers

    def setup(self) -> None:
        pass

    def _decide(self, table: pa.Table, should_stop: Callable[[], bool]) -> tuple[dict, dict]:
        """Columns of the decisions file (in the table's key order) and per-eps removed counts."""
        from data_pipeline.semantic.cluster import dedup_cluster_sweep

        keys = table.column("key").to_numpy()
        clusters = table.column("cluster").to_numpy()
        dists = table.column("dist").to_numpy()
        emb_col = table.column("embedding").combine_chunks()
        width = emb_col.type.byte_width
        raw = np.frombuffer(emb_col.buffers()[1], np.uint8)[emb_col.offset * width :][: len(keys) * width]
        vectors = raw.view(np.float16).reshape(len(keys), width // 2)
        eps = self.cfg.eps_values()
        n = len(keys)
        removed = np.zeros(n, bool)
        max_sim = np.full(n, np.nan, np.float32)
        dup = np.full(n, -1, np.int64)
        swept = dict.fromkeys(eps, 0)
        order = np.lexsort((keys, clusters))
        bounds = np.flatnonzero(np.diff(clusters[order])) + 1
        for members in np.split(order, bounds) if n else []:
            if should_stop():
                raise Interrupted("cluster")
            out = dedup_cluster_sweep(
                vectors[members], keys[members], dists[members], eps, policy=self.cfg.keep, seed=self.cfg.seed
            )
            chosen = out[float(self.cfg.eps)]
            removed[members] = chosen.removed
            max_sim[members] = chosen.max_sim
            has = chosen.duplicate_of >= 0
            dup[members[has]] = members[chosen.duplicate_of[has]]
            for e, result in out.items():
                swept[e] += int(result.removed.sum())
        columns = {"key": keys, "cluster": clusters, "removed": removed, "max_sim": max_sim, "dup": dup}
        return columns, swept

    def __call__(
        self,
        unit: Path,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ShardStats:
        with shard_task(self.out_dir, unit) as stats:
            table = _read_partition(self.work, unit)
            c, swept = self._decide(table, should_stop)
            has = c["dup"] >= 0
            dup_key = np.where(has, c["key"][np.maximum(c["dup"], 0)], 0).astype(np.uint64)
            summary = partition_summary(c["key"], c["cluster"], c["removed"], c["max_sim"], dup_key, swept)
            order = np.argsort(c["key"], kind="stable")
            sim = c["max_sim"][order]
            decisions = pa.table(
                {
                    "key": c["key"][order],
                    "cluster": c["cluster"][order],
                    "removed": c["removed"][order],
                    "max_sim": pa.array(sim, pa.float32(), mask=np.isnan(sim)),
                    "duplicate_of": pa.array(dup_key[order], pa.uint64(), mask=~has[order]),
                },
                schema=DECISION_SCHEMA.with_metadata({SUMMARY_KEY: json.dumps(summary, sort_keys=True)}),
            )
            path = self.work / "decisions" / f"{unit.name}.parquet"
            atomic_write_parquet(decisions, path, row_group_size=_DECISION_ROW_GROUP)
            progress(len(c["key"]))
            stats.docs_in, stats.docs_out = len(c["key"]), int((~c["removed"]).sum())
        return stats


def read_summaries(work: Path, partitions: int) -> list[dict]:
    """The summaries every finished partition's decisions file holds."""
    out = []
    for p in range(partitions):
        path = work / "decisions" / f"{p:05d}.parquet"
        metadata = pq.ParquetFile(path).schema_arrow.metadata or {}
        out.append(json.loads(metadata[SUMMARY_KEY]))
    return out


@dataclasses.dataclass
class SemanticMark(Step):
    """Stage `remove` as a filter step: drops (or annotates) the documents the cluster stage removed.

    Columns: `semantic_cluster` (k-means cluster, null for a document without an embedding),
    `semantic_duplicate`, `semantic_max_sim` (highest cosine to an earlier kept member of its
    cluster, null if none)."""

    name: ClassVar[str] = "semantic"
    work: str = ""
    partitions: int = 1
    shard_index: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self._base = 0
        self._keys = np.zeros(0, np.uint64)

    def columns(self) -> dict[str, pa.DataType]:
        return {
            "semantic_cluster": pa.int64(),
            "semantic_duplicate": pa.bool_(),
            "semantic_max_sim": pa.float32(),
        }

    def begin_shard(self, shard: Path) -> None:
        index = self.shard_index[shard.name]
        self._base = index << 32
        files = [str(Path(self.work) / "decisions" / f"{p:05d}.parquet") for p in range(self.partitions)]
        filters = [("key", ">=", self._base), ("key", "<", (index + 1) << 32)]
        table = pq.ParquetDataset(files, filters=filters, schema=DECISION_SCHEMA).read().sort_by("key")
        self._keys = table.column("key").to_numpy()
        self._cluster = table.column("cluster").to_numpy()
        self._removed = table.column("removed").to_numpy(zero_copy_only=False)
        self._sim = table.column("max_sim").to_numpy(zero_copy_only=False)  # null -> NaN

    def process(self, docs: list[Doc]) -> None:
        if not docs:
            return
        keys = np.array([self._base + d.row for d in docs], dtype=np.uint64)
        if len(self._keys):
            pos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
            hit = self._keys[pos] == keys
        else:
            pos, hit = np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
        for doc, found, p in zip(docs, hit.tolist(), pos.tolist(), strict=True):
            removed = found and bool(self._removed[p])
            sim = float(self._sim[p]) if found else float("nan")
            doc.annotations["semantic_cluster"] = int(self._cluster[p]) if found else None
            doc.annotations["semantic_duplicate"] = removed
            doc.annotations["semantic_max_sim"] = None if sim != sim else sim
            if removed and self.drop and doc.drop_reason is None:
                doc.drop_reason = "semantic:duplicate"
