"""The cluster stage of semantic dedup (which members of each cluster go) and the remove step.

Rounds: k-means puts a near-duplicate pair on two sides of a cluster boundary now and then (12-31%
of planted paraphrases on 100k short documents at 10 clusters, bench/RESULTS.md), and SemDeDup
never compares documents of different clusters. Round r+1 therefore clusters the documents that
survived rounds 0..r again, with centroids trained from another seed, whose boundaries lie
elsewhere, and applies the same rule to them. A document removed in round r is gone for later
rounds; every round's decisions are exact for its clusters, so the result is still a deterministic
function of the input. Each eps of a sweep keeps its own survivors (a bit per eps, `active_eps`),
so the sweep still equals separate runs.

Files of round r (r = 0, 1, ...; `round_path`): `clusters[-r+1]/<p>/<shard>.parquet` (assignments),
`decisions[-r+1]/<p>.parquet`: per document of the round its cluster, `removed` (at the run's eps),
`max_sim` (highest cosine to an earlier kept member of its cluster), `duplicate_of` (that member's
key), `removed_eps` and `active_eps` (bit i: eps_values()[i]), sorted by key, with the partition's
summary in the file's key-value metadata.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_pipeline.dedup.tasks import binary_rows
from data_pipeline.document import Doc
from data_pipeline.filters.base import Step
from data_pipeline.io import atomic_write_parquet
from data_pipeline.semantic.config import SemanticConfig
from data_pipeline.semantic.summary import partition_summary
from data_pipeline.shard import Interrupted, ShardStats, shard_task

SUMMARY_KEY = b"andes.semantic"
DECISION_SCHEMA = pa.schema(
    [
        ("key", pa.uint64()),
        ("cluster", pa.int64()),
        ("removed", pa.bool_()),
        ("max_sim", pa.float32()),  # null: no earlier kept member in its cluster
        ("duplicate_of", pa.uint64()),  # key of that member; null likewise
        ("removed_eps", pa.uint32()),
        ("active_eps", pa.uint32()),
    ]
)
_DECISION_ROW_GROUP = 1 << 16  # readers take one shard's key range, pruned by row group


def round_name(name: str, r: int) -> str:
    """A per-round stage or directory name: `name` for round 0, `name-<r+1>` after."""
    return name if r == 0 else f"{name}-{r + 1}"


def round_path(work: Path, name: str, r: int) -> Path:
    return work / round_name(name, r)


def read_decisions(work: Path, r: int, partitions: int, shard_index: int) -> pa.Table:
    """Round r's decisions of one input shard's documents, sorted by key."""
    files = [str(round_path(work, "decisions", r) / f"{p:05d}.parquet") for p in range(partitions)]
    lo, hi = shard_index << 32, (shard_index + 1) << 32
    table = pq.ParquetDataset(files, filters=[("key", ">=", lo), ("key", "<", hi)], schema=DECISION_SCHEMA)
    return table.read().sort_by("key")


def _bits(flags: np.ndarray) -> np.ndarray:
    """(n, E) bool -> uint32 bitmask per row."""
    return (flags.astype(np.uint32) << np.arange(flags.shape[1], dtype=np.uint32)).sum(
        axis=1, dtype=np.uint32
    )


def unbits(mask: np.ndarray, n_eps: int) -> np.ndarray:
    """uint32 bitmask per row -> (n, E) bool."""
    return ((np.asarray(mask, np.uint32)[:, None] >> np.arange(n_eps, dtype=np.uint32)) & 1).astype(bool)


@dataclasses.dataclass
class ClusterTask:
    """Stage `cluster` (round r: `cluster-<r+1>`): every cluster of one partition -> its decisions."""

    cfg: SemanticConfig
    work: Path
    round_: int
    out_dir: Path  # markers

    def setup(self) -> None:
        pass

    def _decide(self, table: pa.Table, should_stop: Callable[[], bool]) -> tuple[dict, dict]:
        """Columns of the decisions file (in the table's row order) and per-eps removed counts."""
        from data_pipeline.semantic.cluster import dedup_cluster_sweep

        keys, clusters = table.column("key").to_numpy(), table.column("cluster").to_numpy()
        dists, vectors = (
            table.column("dist").to_numpy(),
            binary_rows(table.column("embedding")).view(np.float16),
        )
        eps = self.cfg.eps_values()
        active = unbits(table.column("active_eps").to_numpy(), len(eps))
        n = len(keys)
        removed = np.zeros((n, len(eps)), bool)
        max_sim, dup = np.full(n, np.nan, np.float32), np.full(n, -1, np.int64)
        order = np.lexsort((keys, clusters))
        for members in np.split(order, np.flatnonzero(np.diff(clusters[order])) + 1) if n else []:
            if should_stop():
                raise Interrupted("cluster")
            out = dedup_cluster_sweep(
                vectors[members],
                keys[members],
                dists[members],
                eps,
                policy=self.cfg.keep,
                seed=self.cfg.seed,
                active=active[members],
            )
            for i, result in enumerate(out.values()):
                removed[members, i] = result.removed
            chosen = out[eps[0]]
            max_sim[members] = chosen.max_sim
            has = chosen.duplicate_of >= 0
            dup[members[has]] = members[chosen.duplicate_of[has]]
        swept = {e: int(removed[:, i].sum()) for i, e in enumerate(eps)}
        columns = {"key": keys, "cluster": clusters, "removed": removed, "active": active, "max_sim": max_sim}
        return {**columns, "dup": dup}, swept

    def __call__(
        self,
        unit: Path,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ShardStats:
        with shard_task(self.out_dir, unit) as stats:
            files = sorted((round_path(self.work, "clusters", self.round_) / unit.name).glob("*.parquet"))
            tables = [pq.read_table(f) for f in files]
            table = pa.concat_tables(tables).combine_chunks() if tables else None
            c, swept = self._decide(table, should_stop) if table is not None else _empty(self.cfg)
            gone = c["removed"][:, 0]
            has = c["dup"] >= 0
            dup_key = np.where(has, c["key"][np.maximum(c["dup"], 0)], 0).astype(np.uint64)
            summary = partition_summary(c["key"], c["cluster"], gone, c["max_sim"], dup_key, swept)
            summary["round"] = self.round_
            o = np.argsort(c["key"], kind="stable")
            sim = c["max_sim"][o]
            decisions = pa.table(
                {
                    "key": c["key"][o],
                    "cluster": c["cluster"][o],
                    "removed": gone[o],
                    "max_sim": pa.array(sim, pa.float32(), mask=np.isnan(sim)),
                    "duplicate_of": pa.array(dup_key[o], pa.uint64(), mask=~has[o]),
                    "removed_eps": _bits(c["removed"][o]),
                    "active_eps": _bits(c["active"][o]),
                },
                schema=DECISION_SCHEMA.with_metadata({SUMMARY_KEY: json.dumps(summary, sort_keys=True)}),
            )
            path = round_path(self.work, "decisions", self.round_) / f"{unit.name}.parquet"
            atomic_write_parquet(decisions, path, row_group_size=_DECISION_ROW_GROUP)
            progress(len(c["key"]))
            stats.docs_in, stats.docs_out = len(c["key"]), int((~gone).sum())
        return stats


def _empty(cfg: SemanticConfig) -> tuple[dict, dict]:
    """The columns and counts of a partition no document was assigned to."""
    n_eps = len(cfg.eps_values())
    columns = {
        "key": np.zeros(0, np.uint64),
        "cluster": np.zeros(0, np.int64),
        "removed": np.zeros((0, n_eps), bool),
        "active": np.zeros((0, n_eps), bool),
        "max_sim": np.zeros(0, np.float32),
        "dup": np.zeros(0, np.int64),
    }
    return columns, dict.fromkeys(cfg.eps_values(), 0)


def read_summaries(work: Path, partitions: int, rounds: int) -> list[dict]:
    """The summaries every partition's decisions file holds, over all rounds."""
    out = []
    for r in range(rounds):
        for p in range(partitions):
            path = round_path(work, "decisions", r) / f"{p:05d}.parquet"
            metadata = pq.ParquetFile(path).schema_arrow.metadata or {}
            out.append(json.loads(metadata[SUMMARY_KEY]))
    return out


@dataclasses.dataclass
class SemanticMark(Step):
    """Stage `remove` as a filter step: drops (or annotates) the documents any round removed.

    Columns: `semantic_cluster` (the first round's k-means cluster; null for a document without an
    embedding), `semantic_duplicate`, `semantic_max_sim` (highest cosine to an earlier kept member
    of its cluster over the rounds it took part in; null if none)."""

    name: ClassVar[str] = "semantic"
    work: str = ""
    partitions: int = 1
    rounds: int = 1
    shard_index: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self._base = 0
        self._rounds: list[dict[str, np.ndarray]] = []

    def columns(self) -> dict[str, pa.DataType]:
        return {
            "semantic_cluster": pa.int64(),
            "semantic_duplicate": pa.bool_(),
            "semantic_max_sim": pa.float32(),
        }

    def begin_shard(self, shard: Path) -> None:
        index = self.shard_index[shard.name]
        self._base = index << 32
        self._rounds = []
        for r in range(self.rounds):
            t = read_decisions(Path(self.work), r, self.partitions, index)
            self._rounds.append(
                {
                    "key": t.column("key").to_numpy(),
                    "cluster": t.column("cluster").to_numpy(),
                    "removed": t.column("removed").to_numpy(zero_copy_only=False),
                    "sim": t.column("max_sim").to_numpy(zero_copy_only=False),  # null -> NaN
                }
            )

    def process(self, docs: list[Doc]) -> None:
        if not docs:
            return
        keys = np.array([self._base + d.row for d in docs], dtype=np.uint64)
        n = len(keys)
        cluster = np.full(n, -1, np.int64)
        removed, sim = np.zeros(n, bool), np.full(n, np.nan, np.float32)
        for r, d in enumerate(self._rounds):
            if not len(d["key"]):
                continue
            pos = np.minimum(np.searchsorted(d["key"], keys), len(d["key"]) - 1)
            hit = d["key"][pos] == keys
            if r == 0:
                cluster[hit] = d["cluster"][pos[hit]]
            removed[hit] |= d["removed"][pos[hit]]
            sim[hit] = np.fmax(sim[hit], d["sim"][pos[hit]])
        for doc, c, gone, s in zip(docs, cluster.tolist(), removed.tolist(), sim.tolist(), strict=True):
            doc.annotations["semantic_cluster"] = c if c >= 0 else None
            doc.annotations["semantic_duplicate"] = gone
            doc.annotations["semantic_max_sim"] = None if s != s else s
            if gone and self.drop and doc.drop_reason is None:
                doc.drop_reason = "semantic:duplicate"
