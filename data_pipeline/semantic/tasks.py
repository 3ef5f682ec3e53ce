"""The units of work of a semantic dedup run (`andes-data dedup --method semantic`).

Stages, each a picklable task an executor runs once per unit (order and plan: `semantic/stages.py`):

- `EmbedTask`, per input shard: every document's embedding, `OUT/.dedup/embeddings/<shard>.parquet`
  (`id`, float16 `embedding`; `embed.py`), kept for later stages and for users (`classify` reuses it).
- `FitTask`, one unit: spherical k-means (`kmeans.py`) on a seeded sample of all embeddings, once
  per round (seed + round) -> `fit/centroids[-r].npy` and `fit/kmeans.json`.
- `AssignTask`, per input shard: each embedding's nearest centroid and distance, written with the
  document key, the eps it is still alive for and the embedding into
  `clusters/<partition>/<shard>.parquet`; cluster c goes to partition c mod P, so a partition holds
  whole clusters.
- `ClusterTask` and `SemanticMark` (`decide.py`): per partition, which members of each cluster
  go; per input shard, the remove stage. With several rounds (`decide.py`), `assign` and `cluster`
  run once per round on the survivors of the rounds before, each round with its own centroids.

Every output is written under a temp name and renamed, then the unit's marker, as for MinHash
(`dedup/tasks.py`), so any unit can be killed and re-run and gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_pipeline.dedup.clusters import doc_key
from data_pipeline.io import atomic_path, atomic_write_text
from data_pipeline.semantic.config import SemanticConfig
from data_pipeline.semantic.decide import round_path
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

KMEANS_INFO = "fit/kmeans.json"
EMBEDDINGS_DIR = "embeddings"
_READ_ROWS = 1 << 16  # embeddings read per batch by fit
_FLUSH_ROWS = 1 << 16  # assignment rows buffered before writing (~50 MB at 384 dims)


def embeddings_path(work: Path, shard: Path) -> Path:
    return work / EMBEDDINGS_DIR / f"{shard.stem}.parquet"


def centroids_path(work: Path, r: int) -> Path:
    return work / "fit" / ("centroids.npy" if r == 0 else f"centroids-{r + 1}.npy")


def assignment_schema(dim: int) -> pa.Schema:
    """Rows of `clusters/<p>/<shard>.parquet`: key, cluster, distance, live eps, float16 embedding."""
    return pa.schema(
        [
            ("key", pa.uint64()),
            ("cluster", pa.int64()),
            ("dist", pa.float32()),
            ("active_eps", pa.uint32()),
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

    def _fit(self, sample: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
        """Unit float32 centroids (each round its own seed: other boundaries) and what k-means did."""
        from data_pipeline.semantic.kmeans import spherical_kmeans

        if not len(sample):  # no document has text: one arbitrary centroid, nothing is assigned to it
            return np.zeros((1, sample.shape[1] or 1), np.float32), {"clusters": 1, "seed": seed}
        k = max(1, min(self.clusters, len(sample)))
        km = spherical_kmeans(
            sample.astype(np.float32),
            k,
            niter=self.cfg.kmeans_iterations,
            seed=seed,
            backend=self.cfg.kmeans_backend,
            faiss_threads=self.threads,
        )
        info = {
            "clusters": k,
            "seed": seed,
            "inertia": round(float(km.inertia), 4),
            "iterations": km.iterations,
        }
        return km.centroids.astype(np.float32), info

    def __call__(
        self,
        unit: Path,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ShardStats:
        from data_pipeline.semantic.embed import check_same_encoder

        with shard_task(self.out_dir, unit) as stats:
            files = [p for s in self.shards if (p := embeddings_path(self.work, s)).is_file()]
            encoder = check_same_encoder(files)
            sample = self._sample(files)
            if should_stop():
                raise Interrupted(unit.name)
            info = {"sample": int(len(sample)), "backend": self.cfg.kmeans_backend, "encoder": encoder}
            for r in range(self.cfg.rounds):
                if should_stop():
                    raise Interrupted(unit.name)
                centroids, info[f"round {r + 1}"] = self._fit(sample, self.cfg.seed + r)
                with atomic_path(centroids_path(self.work, r)) as tmp, open(tmp, "wb") as f:
                    np.save(f, centroids)
            atomic_write_text(self.work / KMEANS_INFO, json.dumps(info, indent=1, sort_keys=True) + "\n")
            progress(len(sample))
            stats.docs_in, stats.docs_out = len(sample), self.cfg.rounds
        return stats


@dataclasses.dataclass
class AssignTask:
    """Stage `assign` (round r: `assign-<r+1>`): one shard's embeddings that survived the earlier
    rounds for some eps -> nearest centroid of round r, written by cluster partition."""

    work: Path
    shard_index: dict[str, int]
    partitions: int
    batch_rows: int
    round_: int
    n_eps: int
    out_dir: Path  # markers

    def _removed_before(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted keys, uint32 eps bitmask) of this shard's documents removed in earlier rounds."""
        from data_pipeline.semantic.decide import read_decisions

        keys, masks = [], []
        for r in range(self.round_):
            t = read_decisions(self.work, r, self.partitions, self._index)
            mask = t.column("removed_eps").to_numpy()
            keys.append(t.column("key").to_numpy()[mask != 0])
            masks.append(mask[mask != 0])
        if not keys:
            return np.zeros(0, np.uint64), np.zeros(0, np.uint32)
        k, m = np.concatenate(keys), np.concatenate(masks)
        order = np.argsort(k, kind="stable")
        k, m = k[order], m[order]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if len(k) else np.zeros(0, np.int64)
        return k[starts], np.bitwise_or.reduceat(m, starts) if len(k) else m

    def _active(self, keys: np.ndarray, gone_keys: np.ndarray, gone_mask: np.ndarray) -> np.ndarray:
        """uint32 mask of the eps each document is still alive for."""
        alive = np.full(len(keys), (1 << self.n_eps) - 1, np.uint32)
        if len(gone_keys):
            pos = np.minimum(np.searchsorted(gone_keys, keys), len(gone_keys) - 1)
            hit = gone_keys[pos] == keys
            alive[hit] &= ~gone_mask[pos[hit]]
        return alive

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
            centroids = np.load(centroids_path(self.work, self.round_))
            dim = pq.ParquetFile(path).schema_arrow.field("embedding").type.list_size
            self._index = self.shard_index[shard.name]
            gone_keys, gone_mask = self._removed_before()
            writers = PartitionWriters(
                round_path(self.work, "clusters", self.round_),
                shard.stem,
                self.partitions,
                assignment_schema(dim),
                part_of=lambda c: (c["cluster"] % self.partitions).astype(np.int64),
                flush_rows=_FLUSH_ROWS,
            )
            writers.clean()
            try:
                for rows, vectors in iter_embeddings(path, self.batch_rows):
                    if should_stop():
                        raise Interrupted(str(shard))
                    keys = doc_key(self._index, rows)
                    alive = self._active(keys, gone_keys, gone_mask)
                    live = alive != 0
                    labels, dists = assign(vectors[live], centroids)
                    raw = np.ascontiguousarray(vectors[live]).view(np.uint8)
                    columns = {"key": keys[live], "cluster": labels, "dist": dists, "active_eps": alive[live]}
                    writers.add({**columns, "embedding": raw})
                    stats.docs_in += len(rows)
                    stats.docs_out += int(live.sum())
                    progress(len(rows))
                writers.commit()
            except BaseException:
                writers.abort()
                raise
        return stats
